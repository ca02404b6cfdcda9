"""The lean HTTP/1.1 pool (backends/http1.py) against hand-scripted servers: framing, reuse, stale connections,
cancellation, back-pressure; and the raw NDJSON relay of OllamaBackend."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trustme

from app.backends import http1
from app.backends.http1 import ConnectFailed, Http1Error, Http1Pool
from app.backends.ollama import OllamaBackend
from app.backends.transport import LeanTransport
from app.core.errors import BadBackendResponse

pytestmark = pytest.mark.anyio
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP server running `handler(reader, writer, connection_number)`; yields its URL and the connections seen."""
    seen: list[int] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(len(seen))
        try:
            await handler(reader, writer, seen[-1])
        finally:
            writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        yield f"http://127.0.0.1:{port}", seen


async def read_request(reader: asyncio.StreamReader) -> tuple[str, bytes] | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None  # the client closed the connection
    lines = head.decode().split("\r\n")
    length = next((int(v) for k, _, v in (h.partition(": ") for h in lines[1:]) if k.lower() == "content-length"), 0)
    return lines[0], await reader.readexactly(length)


def response(body: bytes, *, headers: str = "", status: str = "200 OK") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n{headers}\r\n".encode() + body


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


async def keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
    while (req := await read_request(reader)) is not None:
        writer.write(response(json.dumps({"line": req[0], "body": req[1].decode()}).encode()))
        await writer.drain()


async def test_request_line_headers_and_reuse() -> None:
    async with raw_server(keep_answering) as (url, seen):
        pool = Http1Pool(url + "/prefix")
        for i in range(5):
            async with await pool.request("POST", "/api/chat", b'{"n":%d}' % i) as resp:
                got = json.loads(await resp.read())
            assert resp.status == 200 and got == {"line": "POST /prefix/api/chat HTTP/1.1", "body": f'{{"n":{i}}}'}
        assert len(seen) == 1  # one keep-alive connection served all five
        await pool.aclose()


async def test_chunked_and_close_delimited_bodies() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        if n == 0:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked(b"ab", b"cd", b"e"))
            await writer.drain()
            await read_request(reader)  # the same connection is reused for the second request
            writer.write(b"HTTP/1.1 200 OK\r\n\r\n")  # no length, no chunking: the body ends with the connection
            writer.write(b"until close")
            await writer.drain()

    async with raw_server(handler) as (url, seen):
        pool = Http1Pool(url)
        async with await pool.request("GET", "/a") as resp:
            assert await resp.read() == b"abcde"
        async with await pool.request("GET", "/b") as resp:
            assert await resp.read() == b"until close"
        assert len(seen) == 1 and pool._idle == []  # a close-delimited connection is not kept
        await pool.aclose()


async def test_stale_keepalive_connection_retries_only_idempotent_requests_once() -> None:
    received: list[str] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        first = await read_request(reader)
        assert first is not None
        received.append(first[0])
        writer.write(response(b'{"conn":%d}' % n))
        await writer.drain()
        if (again := await read_request(reader)) is not None:  # the next request on this connection:
            received.append(again[0])  # hang up without a byte (the keep-alive race)

    async with raw_server(handler) as (url, _):
        pool = Http1Pool(url)
        responses = [await pool.request("GET", "/warm") for _ in range(3)]  # three connections at once
        for r in responses:
            await r.read()
            r.close()
        assert len(pool._idle) == 3
        async with await pool.request("GET", "/again") as resp:  # retried once, on a fresh connection
            assert json.loads(await resp.read()) == {"conn": 3}
        with pytest.raises(Http1Error, match="before the response was complete"):
            await pool.request("POST", "/generate", b"{}")  # may have been received: never re-sent
        assert received.count("POST /generate HTTP/1.1") == 1
        await pool.aclose()


async def test_interim_1xx_responses_are_skipped() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        i = 0
        while await read_request(reader) is not None:
            i += 1
            writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n" + response(b'{"answer":%d}' % i))
            await writer.drain()

    async with raw_server(handler) as (url, seen):
        pool = Http1Pool(url)
        for i in (1, 2, 3):
            async with await pool.request("GET", "/") as resp:
                assert resp.status == 200 and "link" not in resp.headers
                assert json.loads(await resp.read()) == {"answer": i}
        assert len(seen) == 1
        await pool.aclose()


async def test_bytes_outside_a_response_close_the_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while await read_request(reader) is not None:
            writer.write(response(b"ok") + (b"junk" if n == 0 else b""))
            await writer.drain()

    async with raw_server(handler) as (url, seen):
        pool = Http1Pool(url)
        for _ in range(2):
            async with await pool.request("GET", "/") as resp:
                assert await resp.read() == b"ok"
            await asyncio.sleep(0.05)
        assert len(seen) == 2  # the connection that sent junk was not reused
        await pool.aclose()


async def test_close_delimited_body_cut_by_a_reset_is_an_error() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n\r\npartial")
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with RST
        writer.transport.abort()

    async with raw_server(handler) as (url, _):
        pool = Http1Pool(url)
        resp = await pool.request("GET", "/")
        with pytest.raises(Http1Error):
            await resp.read()
        resp.close()
        await pool.aclose()


async def test_https_upstream() -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    seen: list[str] = []

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (req := await read_request(reader)) is not None:
            seen.append(req[0])
            writer.write(response(b'{"secure":true}'))
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0, ssl=server_ctx)
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    async with server:
        pool = Http1Pool(url, ssl_context=client_ctx)
        for _ in range(2):
            async with await pool.request("GET", "/api/version") as resp:
                assert json.loads(await resp.read()) == {"secure": True}
        assert seen == ["GET /api/version HTTP/1.1"] * 2
        await pool.aclose()
        untrusted = Http1Pool(url)  # the system trust store does not know this CA
        with pytest.raises(ConnectFailed, match="cannot connect"):
            await untrusted.request("GET", "/api/version")


def test_host_header_brackets_ipv6_literals() -> None:
    assert "Host: [::1]\r\n" in Http1Pool("http://[::1]/")._head
    assert "Host: [::1]:11434\r\n" in Http1Pool("http://[::1]:11434")._head
    assert "Host: ollama:11434\r\n" in Http1Pool("http://ollama:11434")._head


async def test_connection_lost_mid_body_raises_and_is_not_reused() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        await writer.drain()

    async with raw_server(handler) as (url, _):
        pool = Http1Pool(url)
        resp = await pool.request("GET", "/")
        with pytest.raises(Http1Error, match="before the response was complete"):
            await resp.read()
        resp.close()
        assert pool._idle == []
        await pool.aclose()


async def test_malformed_response_and_refused_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()

    async with raw_server(handler) as (url, _):
        pool = Http1Pool(url)
        with pytest.raises(Http1Error, match="malformed HTTP response"):
            await pool.request("GET", "/")
        await pool.aclose()
    with pytest.raises(ConnectFailed, match="cannot connect"):
        await Http1Pool(url).request("GET", "/")
    with pytest.raises(ValueError, match="unsupported upstream URL"):
        Http1Pool("ftp://example")


async def test_cancelled_read_closes_the_connection() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while await read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"1\r\na\r\n")
            await writer.drain()
            await asyncio.sleep(0.2 if n == 0 else 0)
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async with raw_server(handler) as (url, seen):
        pool = Http1Pool(url)
        resp = await pool.request("GET", "/")
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await resp.read()
        resp.close()  # half-read: closed, never handed to the next request
        assert pool._idle == []
        async with await pool.request("GET", "/") as again:
            assert await again.read() == b"a"
        assert len(seen) == 2
        await pool.aclose()


async def test_back_pressure_pauses_reading_and_keeps_every_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http1, "HIGH_WATER", 1024)
    big = bytes(range(256)) * 2000  # 512 KB

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        writer.write(response(big))
        await writer.drain()
        await asyncio.sleep(1)

    async with raw_server(handler) as (url, _):
        pool = Http1Pool(url)
        async with await pool.request("GET", "/") as resp:
            received = b""
            async for piece in resp.iter_raw():
                received += piece
                await asyncio.sleep(0.001)  # a slow consumer
        assert received == big
        await pool.aclose()


async def test_released_connection_is_pooled_reading_even_if_it_was_paused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http1, "HIGH_WATER", 1024)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while (req := await read_request(reader)) is not None:
            if req[0].startswith("GET /big"):  # a first piece, then much more after the reader has what it wants
                writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"4\r\nhead\r\n")
                await writer.drain()
                await asyncio.sleep(0.05)
                writer.write(chunked(b"x" * 50_000))
            else:
                writer.write(response(b"small"))
            await writer.drain()

    async with raw_server(handler) as (url, seen):
        pool = Http1Pool(url)
        resp = await pool.request("GET", "/big")
        assert await anext(resp.iter_raw()) == b"head"
        await asyncio.sleep(0.1)  # 50 KB arrive while nobody reads: reading pauses
        resp.release_when_complete()
        await asyncio.sleep(0.1)
        async with await pool.request("GET", "/small") as again:
            assert await again.read() == b"small"
        assert len(seen) == 1  # the big response was drained and its connection reused
        await pool.aclose()


async def test_a_parked_connection_that_never_completes_is_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http1, "PARK_S", 0.05)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + b"4\r\nhead\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async with raw_server(handler) as (url, _):
        pool = Http1Pool(url)
        resp = await pool.request("GET", "/")
        assert await anext(resp.iter_raw()) == b"head"
        conn = resp._conn
        resp.release_when_complete()
        await asyncio.sleep(0.15)
        assert conn is not None and conn.closed and pool._idle == [] and not pool._parked
        await pool.aclose()


# ---- OllamaBackend.relay_lines ------------------------------------------------------------------------


def ndjson_server(lines: list[bytes], *, delay_terminator_s: float = 0.0) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        while await read_request(reader) is not None:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n")
            for line in lines:
                writer.write(chunked(line)[: -len(b"0\r\n\r\n")])
                await writer.drain()
                await asyncio.sleep(0.005)
            await asyncio.sleep(delay_terminator_s)
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    return handler


def token(text: str) -> bytes:
    return json.dumps({"model": "m", "message": {"content": text}, "done": False}, separators=(",", ":")).encode()


FINAL = b'{"model":"m","message":{"content":""},"done": true,"eval_count":2}'  # spelled with a space on purpose


async def relay(backend: OllamaBackend) -> tuple[bytes, list[dict[str, Any] | None]]:
    stream = backend.relay_lines({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, chat=True)
    assert stream is not None
    data, finals = b"", []
    async for block, final in stream:
        data += block
        finals.append(final)
    return data, finals


async def test_relay_passes_bytes_through_and_finds_the_done_chunk() -> None:
    lines = [token("a") + b"\n", token("b") + b"\n" + token("c") + b"\n", FINAL + b"\n"]
    async with raw_server(ndjson_server(lines, delay_terminator_s=0.05)) as (url, seen):
        backend = OllamaBackend(LeanTransport(url, deadline_s=2.0))
        data, finals = await relay(backend)
        assert data == b"".join(lines)  # byte for byte, nothing re-encoded
        assert finals[-1] == {"model": "m", "message": {"content": ""}, "done": True, "eval_count": 2}
        assert all(f is None for f in finals[:-1])
        await asyncio.sleep(0.1)  # the terminator arrives after the done line: then the connection is pooled
        assert len(backend.transport._pool._idle) == 1  # type: ignore[attr-defined]
        assert (await relay(backend))[0] == data
        assert len(seen) == 1
        await backend.aclose()


async def test_relay_line_split_across_reads_and_no_trailing_newline() -> None:
    line = token("x") + b"\n"
    async with raw_server(ndjson_server([line[:7], line[7:], FINAL])) as (url, _):
        backend = OllamaBackend(LeanTransport(url, deadline_s=2.0))
        data, finals = await relay(backend)
        assert data == line + FINAL + b"\n" and finals[-1] is not None and finals[-1]["done"] is True
        await backend.aclose()


@pytest.mark.parametrize(
    ("lines", "needle"),
    [
        ([token("a") + b"\n", b'{"error":"model runner crashed"}\n'], "model runner crashed"),
        ([token("a") + b"\n"], "ended before a done=true chunk"),
        ([token("a") + b"\n", b"not json\n"], "invalid JSON"),
    ],
)
async def test_relay_errors_after_the_lines_before_them(lines: list[bytes], needle: str) -> None:
    async with raw_server(ndjson_server(lines)) as (url, _):
        backend = OllamaBackend(LeanTransport(url, deadline_s=2.0))
        stream = backend.relay_lines({"model": "m", "messages": []}, chat=True)
        assert stream is not None
        got = b""
        with pytest.raises(BadBackendResponse, match=needle):
            async for block, _ in stream:
                got += block
        assert got == token("a") + b"\n"
        await backend.aclose()
