"""Shared fixtures for backend tests: anyio on asyncio, and a tiny real HTTP server for timing tests."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class SlowServer:
    """An HTTP/1.1 server that waits `delay_s` before sending a canned JSON body."""

    delay_s: float = 0.0
    body: dict[str, object] = field(default_factory=dict)
    requests: list[dict[str, object]] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.decode().split("\r\n"):
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
        raw = await reader.readexactly(length) if length else b""
        self.requests.append(json.loads(raw) if raw else {})
        await asyncio.sleep(self.delay_s)
        payload = json.dumps(self.body).encode()
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
            + payload
        )
        await writer.drain()
        writer.close()


@pytest.fixture
async def slow_server() -> AsyncIterator[SlowServer]:
    state = SlowServer()
    server = await asyncio.start_server(state.handle, "127.0.0.1", 0)
    state.port = server.sockets[0].getsockname()[1]
    try:
        yield state
    finally:
        server.close()


@pytest.fixture
def closed_port() -> Callable[[], int]:
    """A port nothing listens on (bound then released), for connection-refused tests."""

    def pick() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port: int = s.getsockname()[1]
        return port

    return pick
