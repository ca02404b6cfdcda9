"""The lean-HTTP/1.1 transport of OllamaBackend: same requests, deadlines and typed errors as the httpx one,
plus a raw NDJSON relay that hands whole lines to the proxy without re-encoding them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

from app.backends.base import JSON
from app.backends.http1 import ConnectFailed, Http1Error, Http1Pool, Http1Response
from app.backends.ollama_wire import ndjson_chunk, parse_object, status_error
from app.core.errors import BackendTimeout, BackendUnavailable, BadBackendResponse

if TYPE_CHECKING:
    from app.backends.ollama import OllamaBackend  # only for annotations: ollama.py imports this module

# A line holding NOT_DONE (and neither DONE nor ERROR) is an ordinary token chunk: relayed without parsing.
# Ollama writes compact JSON; a line in any other spelling is parsed, so the fast path only skips work.
NOT_DONE, DONE, ERROR = b'"done":false', b'"done":true', b'"error"'


def _payload(body: JSON | None) -> bytes | None:
    return None if body is None else json.dumps(body).encode()


def _call_error(backend: OllamaBackend, method: str, url: str, exc: TimeoutError | Http1Error) -> Exception:
    """The typed error for a call that ran out of its deadline or failed in transport."""
    if isinstance(exc, TimeoutError):
        return BackendTimeout(f"{method} {url} exceeded the {backend.deadline_s:g}s deadline")
    if isinstance(exc, ConnectFailed):
        return BackendUnavailable(f"cannot connect to Ollama at {backend.base_url} ({url}): {exc}")
    return BadBackendResponse(f"{url} failed: {exc}")


async def _open(
    backend: OllamaBackend, pool: Http1Pool, method: str, path: str, body: JSON | None, deadline: float
) -> Http1Response:
    """Send the request; an HTTP error status is read and raised as the typed error."""
    url = backend.base_url + path
    try:
        async with asyncio.timeout_at(deadline):
            resp = await pool.request(method, path, _payload(body))
            if resp.status < 400:
                return resp
            try:
                text = (await resp.read()).decode("utf-8", "replace")
            finally:
                resp.close()
    except (TimeoutError, Http1Error) as exc:
        raise _call_error(backend, method, url, exc) from exc
    raise status_error(url, resp.status, text, body)


async def h1_request_json(backend: OllamaBackend, pool: Http1Pool, method: str, path: str, body: JSON | None) -> JSON:
    url = backend.base_url + path
    try:
        async with asyncio.timeout(backend.deadline_s):  # one deadline for the whole call
            resp = await pool.request(method, path, _payload(body))
            try:
                raw = await resp.read()
            finally:
                resp.close()
    except (TimeoutError, Http1Error) as exc:
        raise _call_error(backend, method, url, exc) from exc
    text = raw.decode("utf-8", "replace")
    if resp.status >= 400:
        raise status_error(url, resp.status, text, body)
    return parse_object(text, url)


async def h1_lines(
    backend: OllamaBackend, pool: Http1Pool, path: str, body: JSON
) -> AsyncIterator[tuple[bytes, JSON | None]]:
    """The NDJSON stream as blocks of whole lines (as many as arrived together), each with the parsed done=true
    chunk when the block ends with it (the last block). An {"error"} line raises after the lines before it were
    yielded; a stream that ends without a done chunk raises BadBackendResponse."""
    url = backend.base_url + path
    deadline = asyncio.get_running_loop().time() + backend.deadline_s
    resp = await _open(backend, pool, "POST", path, body, deadline)
    done = False
    try:
        pieces = resp.iter_raw()
        pending = b""
        while not done:
            # The deadline guards each wait for bytes only, never the consumer's own work.
            async with asyncio.timeout_at(deadline):
                piece = await anext(pieces, b"")
            if not piece:
                if not pending.strip():
                    raise BadBackendResponse(f"stream from {url} ended before a done=true chunk")
                piece = b"\n"  # a last line without its newline
            pending += piece
            cut = pending.rfind(b"\n") + 1
            if cut == 0:
                continue
            lines, pending = pending[:cut], pending[cut:]
            for block, final in _scan(lines, url):
                done = final is not None
                yield block, final
    except TimeoutError as exc:
        raise _call_error(backend, "POST", url, exc) from exc
    except Http1Error as exc:
        raise BadBackendResponse(f"stream from {url} broke mid-way: {exc}") from exc
    finally:
        # After the done chunk only the body's terminator is missing: the connection goes back to the pool when
        # it arrives. Otherwise (error, client gone) it is closed.
        if done:
            resp.release_when_complete()
        else:
            resp.close()


def _scan(block: bytes, url: str) -> Iterator[tuple[bytes, JSON | None]]:
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
