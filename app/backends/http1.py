"""A lean HTTP/1.1 client for the router's one hot upstream (Ollama): keep-alive pool on asyncio + httptools.

Why not aiohttp/httpx here: the HTTP client was most of the latency the proxy adds, and a bare relay measured
with each client (benchmarks/proxy_overhead.py; numbers in the README) was fastest with this one. This client
does only what the Ollama calls need: one origin, Content-Length request bodies, responses framed by
Content-Length, chunked encoding or connection close (parsed by httptools, the llhttp binding uvicorn uses),
persistent connections, read back-pressure, and typed errors. Deadlines are the caller's (asyncio.timeout).
Everything else (redirects, cookies, proxies, compression, HEAD) is deliberately absent.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from typing import cast
from urllib.parse import urlsplit

import httptools

HIGH_WATER = 256 * 1024  # buffered response bytes at which reading from the socket pauses
MAX_IDLE = 128  # idle keep-alive connections kept per origin
PARK_S = 5.0  # how long a released connection may wait for the end of its body before it is closed instead
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
MAX_HEADERS = 100  # response header lines (interim responses' included) before the head is refused
MAX_HEAD_BYTES = 64 * 1024  # bytes read before a response's head is complete (status line, headers, interims)


class Http1Error(Exception):
    """Transport failure; `sent` tells whether the request may have reached the server."""

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class ConnectFailed(Http1Error):
    def __init__(self, message: str) -> None:
        super().__init__(message, sent=False)


class _Connection(asyncio.Protocol):
    """One TCP connection: parses responses into a status, headers and a queue of body pieces."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.error: Exception | None = None
        self.paused = False
        self.exchange = False  # a request is out and its response not complete yet
        self._reset()

    def _reset(self) -> None:
        if self.paused and self.transport is not None:
            self.transport.resume_reading()
        self.parser = httptools.HttpResponseParser(self)
        self.interim = False
        self.head_done = False
        self.head_bytes = 0
        self.header_count = 0
        self.status = 0
        self.headers: dict[str, str] = {}
        self.keep_alive = False
        self.until_close = False
        self.complete = False
        self.got_bytes = False
        self.buffered = 0
        self.paused = False
        self.pieces: collections.deque[bytes] = collections.deque()
        self.head_ready: asyncio.Future[None] | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.on_complete: Callable[[_Connection], None] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.until_close and not self.complete and exc is None:
            self.complete, self.keep_alive = True, False  # a body without length or chunking ends with the connection
        if not self.complete and self.error is None:
            reason = f": {exc}" if exc else ""
            self.error = Http1Error(f"connection closed before the response was complete{reason}", sent=True)
        self._wake()

    def eof_received(self) -> bool | None:
        self.closed = True  # the server is closing: never hand this connection out again
        return None

    def data_received(self, data: bytes) -> None:
        if not self.exchange:
            # Bytes while no request is out (e.g. after a complete response): the framing is lost.
            self._fail(Http1Error("unexpected bytes from the server outside a response"))
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(Http1Error("unexpected protocol upgrade in the response"))
        except httptools.HttpParserError as exc:
            self._fail(self._head_error() or Http1Error(f"malformed HTTP response: {exc}"))
        else:
            if not self.head_done:  # a head that never ends (endless header lines) is refused, never buffered
                self.head_bytes += len(data)
                if self.head_bytes > MAX_HEAD_BYTES:
                    self._fail(Http1Error(f"the response head exceeds {MAX_HEAD_BYTES} bytes"))

    def _head_error(self) -> Http1Error | None:
        if self.header_count > MAX_HEADERS:
            return Http1Error(f"the response has more than {MAX_HEADERS} header lines")
        return None

    # -- httptools callbacks ---------------------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        if self.header_count > MAX_HEADERS:
            raise OverflowError("too many header lines")  # the parser stops; data_received reports why
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200 and self.status != 101:
            self.interim = True  # 100 Continue / 103 Early Hints: the real response follows
            self.headers.clear()
            return
        self.head_done = True
        self.keep_alive = self.parser.should_keep_alive()
        framed = "content-length" in self.headers or "chunked" in self.headers.get("transfer-encoding", "")
        self.until_close = not framed and self.status not in (204, 304) and self.status >= 200
        if self.head_ready is not None and not self.head_ready.done():
            self.head_ready.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.on_complete is not None:
            return  # released early (release_when_complete): nobody reads this any more
        self.pieces.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        self.complete = True
        self.exchange = False
        self._wake()
        callback, self.on_complete = self.on_complete, None
        if callback is not None:
            self.pieces.clear()  # the caller had stopped reading: what came after is not wanted
            callback(self)

    # -- helpers ---------------------------------------------------------------------------------------

    def _fail(self, exc: Exception) -> None:
        self.error = exc
        if self.transport is not None:
            self.transport.close()
        self._wake()

    def _wake(self) -> None:
        for fut in (self.head_ready, self.waiter):
            if fut is not None and not fut.done():
                if self.error is not None and fut is self.head_ready:
                    fut.set_exception(self.error)
                else:
                    fut.set_result(None)

    def send(self, data: bytes) -> None:
        self._reset()
        self.exchange = True
        self.head_ready = asyncio.get_running_loop().create_future()
        assert self.transport is not None
        self.transport.write(data)

    async def next_piece(self) -> bytes:
        """All body bytes buffered so far (b"" at the end of the body); waits when there are none."""
        while not self.pieces:
            if self.complete:  # a later error (e.g. junk after the body) concerns the connection, not this body
                return b""
            if self.error is not None:
                raise self.error
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
            self.waiter = None
        piece = self.pieces.popleft() if len(self.pieces) == 1 else b"".join(self.pieces)
        self.pieces.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return piece

    def unpark(self) -> None:
        """Stop buffering for a reader that has left: drop what is queued and read on (on_body discards)."""
        self.pieces.clear()
        self.buffered = 0
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def reusable(self) -> bool:
        idle = self.complete and not self.exchange and not self.paused and not self.pieces
        return idle and self.keep_alive and not self.closed and self.error is None

    def close(self) -> None:
        self.closed = True
        if self.head_ready is not None and not self.head_ready.done():
            self.head_ready.cancel()  # nobody waits for it any more
        if self.transport is not None:
            self.transport.close()


class Http1Response:
    """A response whose head has arrived. Read the body with read() or iter_raw(); always close() it."""

    def __init__(self, pool: Http1Pool, conn: _Connection) -> None:
        self._pool = pool
        self._conn: _Connection | None = conn
        self.status = conn.status
        self.headers = conn.headers

    async def iter_raw(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive; pieces that arrived together are handed over as one."""
        conn = self._conn
        assert conn is not None, "response already closed"
        while piece := await conn.next_piece():
            yield piece

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self.iter_raw()])

    def release_when_complete(self) -> None:
        """The caller has all it wants but the body has not ended yet (e.g. a chunked terminator is still on
        its way): the connection returns to the pool when the body ends, without anyone waiting for it."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        conn.unpark()
        if conn.complete or conn.closed or conn.error is not None:
            self._pool.release(conn)
        else:
            self._pool.park(conn)

    def close(self) -> None:
        """Give the connection back when the body was read to the end, else close it (e.g. on cancel)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            self._pool.release(conn)

    async def __aenter__(self) -> Http1Response:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


class Http1Pool:
    """Keep-alive connections to one origin (http or https). Cheap to create; close with aclose()."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout_s: float = 5.0,
        user_agent: str = "ollama-swarm-router",
        ssl_context: ssl.SSLContext | None = None,
        headers: Mapping[str, str] | None = None,
    ):
        """`ssl_context` for https:// (default: the system's trust store, which SSL_CERT_FILE can point elsewhere);
        `headers` go on every request (e.g. Authorization for an Ollama behind a proxy; checked by the caller)."""
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"unsupported upstream URL {base_url!r}: need http://host[:port] or https://")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl: ssl.SSLContext | None = None
        if parts.scheme == "https":
            self.ssl = ssl_context or ssl.create_default_context()
        self.prefix = parts.path.rstrip("/")
        self.connect_timeout_s = connect_timeout_s
        default_port = self.port == (443 if self.ssl else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host  # an IPv6 literal
        authority = host if default_port else f"{host}:{self.port}"
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        self._head = f"Host: {authority}\r\nUser-Agent: {user_agent}\r\nAccept: */*\r\n{extra}"
        self._idle: list[_Connection] = []
        self._parked: set[_Connection] = set()
        self._closed = False

    async def request(
        self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json"
    ) -> Http1Response:
        """Send a request and wait for the response head.

        A reused connection that dies before answering a byte is the classic keep-alive race (the server
        closed it as we wrote): an idempotent request is retried once, on a fresh connection. A POST is not
        retried, since the server may have received it; connections the server is known to have closed
        (FIN seen) are never handed out, which makes that race rare."""
        data = self._encode(method, path, body, content_type)
        retried = False
        while True:
            conn, reused = await self._acquire(fresh=retried)
            conn.send(data)
            try:
                assert conn.head_ready is not None
                await conn.head_ready
            except Http1Error as exc:
                conn.close()
                if reused and not conn.got_bytes and method in IDEMPOTENT and not retried:
                    retried = True
                    continue
                raise exc from None
            except BaseException:
                conn.close()
                raise
            return Http1Response(self, conn)

    def _encode(self, method: str, path: str, body: bytes | None, content_type: str) -> bytes:
        head = f"{method} {self.prefix}{path} HTTP/1.1\r\n{self._head}"
        if body is not None:
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        elif method in ("POST", "PUT", "PATCH"):
            head += "Content-Length: 0\r\n"
        encoded = (head + "\r\n").encode("latin-1")
        return encoded + body if body else encoded

    async def _acquire(self, *, fresh: bool = False) -> tuple[_Connection, bool]:
        if self._closed:
            raise Http1Error("the HTTP pool is closed", sent=False)
        while self._idle and not fresh:
            conn = self._idle.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                return conn, True
            conn.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, conn = await loop.create_connection(
                    _Connection, self.host, self.port, ssl=self.ssl, server_hostname=self.host if self.ssl else None
                )
        except TimeoutError:
            raise ConnectFailed(f"connecting to {self.host}:{self.port} timed out") from None
        except OSError as exc:
            raise ConnectFailed(f"cannot connect to {self.host}:{self.port}: {exc.strerror or exc}") from None
        return conn, False

    def release(self, conn: _Connection) -> None:
        self._parked.discard(conn)
        if not self._closed and conn.reusable() and len(self._idle) < MAX_IDLE:
            self._idle.append(conn)
        else:
            conn.close()

    def park(self, conn: _Connection) -> None:
        """Pool `conn` once its body ends (on_complete); close it if that takes longer than PARK_S."""
        self._parked.add(conn)
        conn.on_complete = self.release

        def expire() -> None:
            if conn in self._parked:
                self._parked.discard(conn)
                conn.on_complete = None
                conn.close()

        asyncio.get_running_loop().call_later(PARK_S, expire)

    async def aclose(self) -> None:
        self._closed = True
        idle, self._idle = self._idle, []
        parked, self._parked = self._parked, set()
        for conn in [*idle, *parked]:
            conn.close()
