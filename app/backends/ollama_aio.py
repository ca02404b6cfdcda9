"""The aiohttp transport of OllamaBackend: same requests, deadlines and typed errors as the httpx one."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import aiohttp

from app.backends.base import JSON
from app.backends.ollama_wire import ndjson_chunk, parse_object, status_error
from app.core.errors import BackendTimeout, BackendUnavailable, BadBackendResponse

if TYPE_CHECKING:
    from app.backends.ollama import OllamaBackend  # only for annotations: ollama.py imports this module

HEADERS = {"Content-Type": "application/json"}


def _payload(body: JSON | None) -> bytes | None:
    return None if body is None else json.dumps(body).encode()


def _transport_error(backend: OllamaBackend, url: str, exc: aiohttp.ClientError) -> Exception:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return BackendUnavailable(f"cannot connect to Ollama at {backend.base_url} ({url}): {exc}")
    if isinstance(exc, aiohttp.ServerTimeoutError):
        return BackendTimeout(f"{url} timed out: {exc!r}")
    return BadBackendResponse(f"{url} failed: {exc!r}")


async def aio_request_json(
    backend: OllamaBackend, session: aiohttp.ClientSession, method: str, path: str, body: JSON | None
) -> JSON:
    url = backend.base_url + path
    try:
        async with asyncio.timeout(backend.deadline_s):
            async with session.request(method, url, data=_payload(body), headers=HEADERS) as resp:
                status, text = resp.status, await resp.text(errors="replace")
    except TimeoutError as exc:
        raise BackendTimeout(f"{method} {url} exceeded the {backend.deadline_s:g}s deadline") from exc
    except aiohttp.ClientError as exc:
        raise _transport_error(backend, url, exc) from exc
    if status >= 400:
        raise status_error(url, status, text, body)
    return parse_object(text, url)


async def aio_stream(
    backend: OllamaBackend, session: aiohttp.ClientSession, path: str, body: JSON
) -> AsyncIterator[JSON]:

    url = backend.base_url + path
    deadline = asyncio.get_running_loop().time() + backend.deadline_s
    try:
        async with asyncio.timeout_at(deadline):
            resp = await session.post(url, data=_payload(body), headers=HEADERS)
    except TimeoutError as exc:
        raise BackendTimeout(f"POST {url} exceeded the {backend.deadline_s:g}s deadline") from exc
    except aiohttp.ClientError as exc:
        raise _transport_error(backend, url, exc) from exc
    try:
        if resp.status >= 400:
            async with asyncio.timeout_at(deadline):
                text = await resp.text(errors="replace")
            raise status_error(url, resp.status, text, body)
        async for chunk in _chunks(resp, url, deadline):
            yield chunk
            if chunk.get("done"):
                return
        raise BadBackendResponse(f"stream from {url} ended before a done=true chunk")
    except TimeoutError as exc:
        raise BackendTimeout(f"POST {url} exceeded the {backend.deadline_s:g}s deadline") from exc
    except aiohttp.ClientError as exc:
        raise BadBackendResponse(f"stream from {url} broke mid-way: {exc!r}") from exc
    finally:
        resp.close()  # frees the connection; a finished response goes back to the pool first


async def _chunks(resp: aiohttp.ClientResponse, url: str, deadline: float) -> AsyncIterator[JSON]:
    """Split the body into lines without a line-length limit (a final generate chunk can be long)."""
    buffer = b""
    while True:
        # The deadline guards each wait for bytes only, never the consumer's own work.
        async with asyncio.timeout_at(deadline):
            piece = await resp.content.readany()
        if not piece:
            break
        buffer += piece
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            chunk = ndjson_chunk(line.decode("utf-8", "replace"), url)
            if chunk is not None:
                yield chunk
    chunk = ndjson_chunk(buffer.decode("utf-8", "replace"), url)
    if chunk is not None:
        yield chunk
