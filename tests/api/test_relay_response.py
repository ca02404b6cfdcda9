"""RelayResponse at the ASGI level: message shapes, the last block ending the body, upstream closed on every path."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from app.api.relay import RelayResponse

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Blocks:
    def __init__(self, items: list[tuple[bytes, bool]], delay_s: float = 0.0) -> None:
        self.items, self.delay_s, self.closed = items, delay_s, False

    def __aiter__(self) -> AsyncIterator[tuple[bytes, bool]]:
        return self.gen()

    async def gen(self) -> AsyncIterator[tuple[bytes, bool]]:
        for item in self.items:
            await asyncio.sleep(self.delay_s)
            yield item

    async def aclose(self) -> None:
        self.closed = True


async def never_disconnects() -> dict[str, Any]:
    await asyncio.sleep(3600)
    return {"type": "http.disconnect"}


async def test_blocks_are_sent_and_the_last_one_ends_the_body() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    blocks = Blocks([(b"a\n", False), (b"b\n", True), (b"never\n", False)])
    await RelayResponse(blocks, {"x-test": "1"}, "application/x-ndjson")({}, never_disconnects, send)
    start, *body = sent
    assert start["status"] == 200 and (b"x-test", b"1") in start["headers"]
    assert not any(k == b"content-length" for k, _ in start["headers"])  # chunked
    assert [(m["body"], m["more_body"]) for m in body] == [(b"a\n", True), (b"b\n", False)]
    assert blocks.closed


async def test_client_disconnect_stops_the_relay_and_closes_upstream() -> None:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def leaves() -> dict[str, Any]:
        await asyncio.sleep(0.05)
        return {"type": "http.disconnect"}

    blocks = Blocks([(b"x\n", False)] * 100, delay_s=0.01)
    await asyncio.wait_for(RelayResponse(blocks, {}, "text/event-stream")({}, leaves, send), 2)
    assert blocks.closed and 1 < len(sent) < 20  # stopped soon after the client left, without raising


async def test_a_failed_start_still_closes_upstream() -> None:
    async def broken(message: dict[str, Any]) -> None:
        raise OSError("client gone")

    blocks = Blocks([(b"x\n", True)])
    with pytest.raises(OSError):
        await RelayResponse(blocks, {}, "application/x-ndjson")({}, never_disconnects, broken)
    assert blocks.closed


async def test_a_failed_start_runs_the_cleanup_a_never_started_generator_cannot() -> None:
    """The relay generators give back the call's GPU slot and budget reservation in their finally blocks, which
    never run when the generator never started: the response's cleanup does it instead."""
    released: list[str] = []

    async def relay() -> AsyncIterator[tuple[bytes, bool]]:
        try:
            yield b"x\n", True
        finally:
            released.append("generator")

    async def cleanup() -> None:
        released.append("cleanup")

    async def broken(message: dict[str, Any]) -> None:
        raise OSError("client gone")

    with pytest.raises(OSError):
        await RelayResponse(relay(), {}, "application/x-ndjson", cleanup)({}, never_disconnects, broken)
    assert released == ["cleanup"]
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await RelayResponse(relay(), {}, "application/x-ndjson", cleanup)({}, never_disconnects, send)
    assert released == ["cleanup", "generator", "cleanup"]  # after a normal end too (it is idempotent)
