"""How OllamaBackend speaks HTTP: one small protocol with two implementations, chosen at wiring time — the lean
HTTP/1.1 pool (the service's) and httpx (the CLI's shared client; mockable with respx). Both send the same bytes,
bound every call by one deadline, and map transport failures and HTTP error statuses to the exception tree here."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from typing import Literal, Protocol, runtime_checkable

import httpx

from app.backends.base import JSON, LineBlock, RawReply
from app.backends.http1 import ConnectFailed, Http1Error, Http1Pool, Http1Response
from app.backends.ollama_wire import ndjson_chunk, parse_object, status_error
from app.backends.upstream_limits import LineSplitter, UpstreamLimits, too_big
from app.core.errors import BackendTimeout, BackendUnavailable, BadBackendResponse
from app.core.upstream import upstream

# A line holding NOT_DONE (and neither DONE nor ERROR) is an ordinary token chunk: relayed without parsing.
# Ollama writes compact JSON; a line in any other spelling is parsed, so the fast path only skips work.
NOT_DONE, DONE, ERROR = b'"done":false', b'"done":true', b'"error"'


@runtime_checkable
class OllamaTransport(Protocol):
    base_url: str
    deadline_s: float

    async def request_json(self, method: str, path: str, body: JSON | None) -> JSON:
        """One call answered by one JSON object; an HTTP error status raises the typed error."""
        ...

    def stream_lines(self, path: str, body: JSON) -> AsyncGenerator[LineBlock, None]:
        """POST and yield the NDJSON answer as blocks of whole lines, ending with the block of the done chunk. An
        {"error"} line raises after the lines before it; a stream without a done chunk raises BadBackendResponse."""
        ...

    async def open_raw(self, method: str, path: str, body: bytes) -> RawReply:
        """Send `body` as is and hand back the answer unparsed (the deadline covers the head only: a pull may
        stream progress for as long as the download takes)."""
        ...

    async def aclose(self) -> None: ...


class TransportErrors:
    """The one mapping from a transport failure to the exception tree (shared by both transports)."""

    base_url: str
    deadline_s: float
    limits: UpstreamLimits

    async def read_capped(self, pieces: AsyncIterator[bytes], url: str) -> bytes:
        """A whole body, refused once it grows past the response cap."""
        parts: list[bytes] = []
        size = 0
        async for piece in pieces:
            size += len(piece)
            if size > self.limits.max_response_bytes:
                raise too_big(url, "the response", self.limits.max_response_bytes)
            parts.append(piece)
        return b"".join(parts)

    def timed_out(self, method: str, url: str) -> BackendTimeout:
        return BackendTimeout(f"{method} {url} exceeded the {self.deadline_s:g}s deadline")

    def unreachable(self, url: str, exc: Exception) -> BackendUnavailable:
        return BackendUnavailable(f"cannot connect to Ollama at {self.base_url} ({url}): {exc}")

    def broken(self, url: str, exc: Exception, *, mid_stream: bool = False) -> BadBackendResponse:
        if mid_stream:
            return BadBackendResponse(f"stream from {url} broke mid-way: {exc}")
        return BadBackendResponse(f"{url} failed: {exc}")

    @staticmethod
    def no_done(url: str) -> BadBackendResponse:
        return BadBackendResponse(f"stream from {url} ended before a done=true chunk")


def scan_lines(block: bytes, url: str) -> Iterator[LineBlock]:
    """Split a block of whole lines after its done chunk (Ollama ends the stream there) and parse only the lines
    that may be the done chunk or an error. An error line raises once the lines before it were yielded."""
    start = pos = 0
    for line in block.splitlines(keepends=True):
        end = pos + len(line)
        if NOT_DONE not in line or DONE in line or ERROR in line:
            try:
                chunk = ndjson_chunk(line.decode("utf-8", "replace"), url)
            except BadBackendResponse:
                if pos > start:
                    yield block[start:pos], None
                raise
            if chunk is not None and chunk.get("done"):
                yield block[start:end], chunk
                return
        pos = end
    if pos > start:
        yield block[start:pos], None


def _payload(body: JSON | None) -> bytes | None:
    return None if body is None else json.dumps(body).encode()


class LeanTransport(TransportErrors):
    """The service's transport: a keep-alive HTTP/1.1 pool (backends/http1.py); relays Ollama's bytes as read."""

    def __init__(
        self,
        base_url: str,
        *,
        deadline_s: float = 600.0,
        connect_timeout_s: float = 5.0,
        headers: Mapping[str, str] | None = None,
        limits: UpstreamLimits | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.deadline_s = deadline_s
        self.limits = limits or UpstreamLimits()
        self._pool = Http1Pool(self.base_url, connect_timeout_s=connect_timeout_s, headers=headers)

    def _error(self, method: str, url: str, exc: TimeoutError | Http1Error) -> Exception:
        if isinstance(exc, TimeoutError):
            return self.timed_out(method, url)
        if isinstance(exc, ConnectFailed):
            return self.unreachable(url, exc)
        return self.broken(url, exc)

    async def request_json(self, method: str, path: str, body: JSON | None) -> JSON:
        url = self.base_url + path
        try:
            async with asyncio.timeout(self.deadline_s):  # one deadline for the whole call
                resp = await self._pool.request(method, path, _payload(body))
                try:
                    raw = await self.read_capped(resp.iter_raw(), url)
                finally:
                    resp.close()
        except (TimeoutError, Http1Error) as exc:
            raise self._error(method, url, exc) from exc
        text = raw.decode("utf-8", "replace")
        if resp.status >= 400:
            raise status_error(url, resp.status, text, body)
        return parse_object(text, url)

    async def _open(self, path: str, body: JSON, deadline: float) -> Http1Response:
        url = self.base_url + path
        try:
            async with asyncio.timeout_at(deadline):
                resp = await self._pool.request("POST", path, _payload(body))
                if resp.status < 400:
                    return resp
                try:
                    text = (await self.read_capped(resp.iter_raw(), url)).decode("utf-8", "replace")
                finally:
                    resp.close()
        except (TimeoutError, Http1Error) as exc:
            raise self._error("POST", url, exc) from exc
        raise status_error(url, resp.status, text, body)

    async def stream_lines(self, path: str, body: JSON) -> AsyncGenerator[LineBlock, None]:
        url = self.base_url + path
        deadline = asyncio.get_running_loop().time() + self.deadline_s
        resp = await self._open(path, body, deadline)
        done = False
        try:
            pieces = resp.iter_raw()
            splitter = LineSplitter(url, self.limits.max_line_bytes)
            while not done:
                # The deadline guards each wait for bytes only, never the consumer's own work.
                async with asyncio.timeout_at(deadline):
                    piece = await anext(pieces, b"")
                if not piece:
                    if not splitter.pending.strip():
                        raise self.no_done(url)
                    piece = b"\n"  # a last line without its newline
                lines = splitter.feed(piece)
                if not lines:
                    continue
                for block, final in scan_lines(lines, url):
                    done = final is not None
                    yield block, final
        except TimeoutError as exc:
            raise self.timed_out("POST", url) from exc
        except Http1Error as exc:
            raise self.broken(url, exc, mid_stream=True) from exc
        finally:
            # After the done chunk only the body's terminator is missing: the connection goes back to the pool
            # when it arrives. Otherwise (error, client gone) it is closed.
            if done:
                resp.release_when_complete()
            else:
                resp.close()

    async def open_raw(self, method: str, path: str, body: bytes) -> RawReply:
        url = self.base_url + path
        try:
            async with asyncio.timeout(self.deadline_s):
                resp = await self._pool.request(method, path, body or None)
        except (TimeoutError, Http1Error) as exc:
            raise self._error(method, url, exc) from exc

        async def pieces() -> AsyncIterator[bytes]:
            try:
                async for piece in resp.iter_raw():
                    yield piece
            except Http1Error as exc:
                raise self.broken(url, exc, mid_stream=True) from exc
            finally:
                resp.close()

        return RawReply(resp.status, resp.headers.get("content-type"), pieces())

    async def aclose(self) -> None:
        await self._pool.aclose()


class HttpxTransport(TransportErrors):
    """httpx over a (usually shared) AsyncClient: no read timeout (a cold load sends no byte for minutes), an
    overall deadline instead; connect/write/pool stay short."""

    def __init__(
        self,
        client: httpx.AsyncClient | None,
        base_url: str,
        *,
        deadline_s: float = 600.0,
        connect_timeout_s: float = 5.0,
        headers: Mapping[str, str] | None = None,
        limits: UpstreamLimits | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.deadline_s = deadline_s
        self.limits = limits or UpstreamLimits()
        self._headers = dict(headers or {})
        self._own_client = client is None
        self._client = client if client is not None else httpx.AsyncClient()
        # Pool timeout is generous: the shared client may be busy with other long streams.
        self._timeout = httpx.Timeout(connect=connect_timeout_s, read=None, write=30.0, pool=60.0)

    def _error(self, url: str, exc: httpx.HTTPError) -> Exception:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return self.unreachable(url, exc)
        if isinstance(exc, httpx.TimeoutException):
            return BackendTimeout(f"{url} timed out: {exc!r}")
        return self.broken(url, exc)

    async def request_json(self, method: str, path: str, body: JSON | None) -> JSON:
        url = self.base_url + path
        try:
            async with asyncio.timeout(self.deadline_s):
                stream = self._client.stream(method, url, json=body, headers=self._headers, timeout=self._timeout)
                async with stream as resp:
                    raw = await self.read_capped(resp.aiter_bytes(), url)
        except TimeoutError as exc:
            raise self.timed_out(method, url) from exc
        except httpx.HTTPError as exc:
            raise self._error(url, exc) from exc
        text = raw.decode("utf-8", "replace")
        if resp.status_code >= 400:
            raise status_error(url, resp.status_code, text, body)
        return parse_object(text, url)

    async def stream_lines(self, path: str, body: JSON) -> AsyncGenerator[LineBlock, None]:
        url = self.base_url + path
        deadline = asyncio.get_running_loop().time() + self.deadline_s
        try:
            async with asyncio.timeout_at(deadline):
                cm = self._client.stream("POST", url, json=body, headers=self._headers, timeout=self._timeout)
                resp = await cm.__aenter__()
        except TimeoutError as exc:
            raise self.timed_out("POST", url) from exc
        except httpx.HTTPError as exc:
            raise self._error(url, exc) from exc
        try:
            async for block in self._blocks(resp, url, body, deadline):
                yield block
        finally:
            await cm.__aexit__(None, None, None)

    async def _blocks(self, resp: httpx.Response, url: str, body: JSON, deadline: float) -> AsyncIterator[LineBlock]:
        try:
            if resp.status_code >= 400:
                async with asyncio.timeout_at(deadline):
                    text = (await self.read_capped(resp.aiter_bytes(), url)).decode("utf-8", "replace")
                raise status_error(url, resp.status_code, text, body)
            pieces = resp.aiter_bytes()
            splitter = LineSplitter(url, self.limits.max_line_bytes)
            while True:
                # The deadline guards each wait for bytes only, never the consumer's own work.
                async with asyncio.timeout_at(deadline):
                    piece = await anext(pieces, b"")
                if not piece:
                    if not splitter.pending.strip():
                        raise self.no_done(url)
                    piece = b"\n"  # a last line without its newline
                for block in scan_lines(splitter.feed(piece), url):
                    yield block
                    if block[1] is not None:
                        return
        except TimeoutError as exc:
            raise self.timed_out("POST", url) from exc
        except httpx.HTTPError as exc:
            raise self.broken(url, exc, mid_stream=True) from exc

    async def open_raw(self, method: str, path: str, body: bytes) -> RawReply:
        url = self.base_url + path
        request = self._client.build_request(
            method,
            url,
            content=body,
            headers={**self._headers, "content-type": "application/json"},
            timeout=self._timeout,
        )
        try:
            async with asyncio.timeout(self.deadline_s):
                resp = await self._client.send(request, stream=True)
        except TimeoutError as exc:
            raise self.timed_out(method, url) from exc
        except httpx.HTTPError as exc:
            raise self._error(url, exc) from exc

        async def pieces() -> AsyncIterator[bytes]:
            try:
                async for piece in resp.aiter_bytes():
                    yield piece
            except httpx.HTTPError as exc:
                raise self.broken(url, exc, mid_stream=True) from exc
            finally:
                await resp.aclose()

        return RawReply(resp.status_code, resp.headers.get("content-type"), pieces())

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()


TransportKind = Literal["lean", "httpx"]


def make_transport(
    kind: TransportKind,
    base_url: str,
    *,
    client: httpx.AsyncClient | None = None,
    deadline_s: float = 600.0,
    headers: Mapping[str, str] | None = None,
    limits: UpstreamLimits | None = None,
) -> OllamaTransport:
    """The wiring's choice: "lean" (the service's default) or "httpx" (honours HTTP(S)_PROXY / NO_PROXY).
    user:pass@ in `base_url` becomes an Authorization: Basic header; `headers` go on every call too (and win)."""
    url, sent = upstream(base_url, headers)
    if kind == "lean":
        return LeanTransport(url, deadline_s=deadline_s, headers=sent, limits=limits)
    return HttpxTransport(client, url, deadline_s=deadline_s, headers=sent, limits=limits)
