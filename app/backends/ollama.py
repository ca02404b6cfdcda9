"""Ollama backend: native /api/* over the shared httpx client or the lean HTTP/1.1 pool, typed errors."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import httpx

from app.backends.base import DEFAULT_KEEP_ALIVE, JSON, LoadedModel, Usage
from app.backends.http1 import Http1Pool
from app.backends.ollama_h1 import h1_lines, h1_request_json
from app.backends.ollama_wire import loaded_model, models_list, ndjson_chunk, parse_object, status_error, with_latest
from app.core.errors import BackendTimeout, BackendUnavailable, BadBackendResponse

log = logging.getLogger(__name__)

# Request key that allows a differing options.num_ctx through (i.e. the plan means to reload the model).
RELOAD_FLAG = "_reload"


class OllamaBackend:
    """One Ollama server (one GPU).

    Timeouts: connect/write/pool are short, read is unlimited because Ollama sends no byte until a cold
    model has loaded (can take minutes); every call is instead bounded by an overall `deadline_s`.

    num_ctx: Ollama reloads a model whenever a load-time option differs from the running one, so this
    backend remembers the num_ctx each model was loaded with (from the requests it sent and from
    /api/ps `context_length`) and strips a differing `options.num_ctx` unless the request carries
    `"_reload": True` (stripped before sending). The record of a model is dropped on unload and when
    /api/ps no longer lists it, so call `loaded()` regularly (the orchestrator does, every step).
    """

    def __init__(
        self,
        client: httpx.AsyncClient | None,
        base_url: str,
        *,
        deadline_s: float = 600.0,
        keep_alive: str | int = DEFAULT_KEEP_ALIVE,
        connect_timeout_s: float = 5.0,
        http1: bool = False,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.name = self.base_url
        self.deadline_s = deadline_s
        self.keep_alive = keep_alive
        self._own_client = client is None
        self._client = client if client is not None else httpx.AsyncClient()
        # Pool timeout is generous: the shared client may be busy with other long streams.
        self._timeout = httpx.Timeout(connect=connect_timeout_s, read=None, write=30.0, pool=60.0)
        self._num_ctx: dict[str, int] = {}
        # http1=True: requests go over this backend's own lean keep-alive pool (backends/http1.py), which costs
        # ~1.4 ms less per call than httpx here, most of the proxy's added latency (benchmarks/proxy_overhead.py),
        # and enables relay_lines(). Semantics are identical; httpx (mockable with respx) remains the default.
        self._pool = Http1Pool(self.base_url, connect_timeout_s=connect_timeout_s) if http1 else None

    # ---- inference -------------------------------------------------------------------------------

    async def chat(self, request: JSON) -> JSON:
        return await self._post_json("/api/chat", self._prepare(request, stream=False))

    def chat_stream(self, request: JSON) -> AsyncIterator[JSON]:
        return self._stream("/api/chat", self._prepare(request, stream=True))

    async def generate(self, request: JSON) -> JSON:
        return await self._post_json("/api/generate", self._prepare(request, stream=False))

    def generate_stream(self, request: JSON) -> AsyncIterator[JSON]:
        return self._stream("/api/generate", self._prepare(request, stream=True))

    def relay_lines(self, request: JSON, *, chat: bool) -> AsyncIterator[tuple[bytes, JSON | None]] | None:
        """The streaming answer as Ollama's own NDJSON bytes, in blocks of whole lines, with the parsed done
        chunk alongside the last block: what the proxy relays without re-encoding. None without http1."""
        if self._pool is None:
            return None
        path = "/api/chat" if chat else "/api/generate"
        return h1_lines(self, self._pool, path, self._prepare(request, stream=True))

    async def embed(self, request: JSON) -> JSON:
        body = dict(request)
        body.pop(RELOAD_FLAG, None)
        body.setdefault("keep_alive", self.keep_alive)
        return await self._post_json("/api/embed", body)

    # ---- model management ------------------------------------------------------------------------

    async def installed(self) -> list[JSON]:
        body = await self._request_json("GET", "/api/tags", None)
        return models_list(body, "/api/tags")

    async def loaded(self) -> list[LoadedModel]:
        entries = models_list(await self._request_json("GET", "/api/ps", None), "/api/ps")
        models = [loaded_model(e) for e in entries]
        self._sync_num_ctx(entries)
        return models

    async def show(self, model: str) -> JSON:
        return await self._post_json("/api/show", {"model": model})

    async def version(self) -> str:
        body = await self._request_json("GET", "/api/version", None)
        return str(body.get("version", ""))

    async def load(self, model: str, keep_alive: str | int = DEFAULT_KEEP_ALIVE) -> Usage:
        started = time.perf_counter()
        body = await self._post_json("/api/generate", {"model": model, "keep_alive": keep_alive, "stream": False})
        usage = Usage.from_response(body)
        if usage.load_ms == 0.0:
            # Ollama's empty-prompt load reply carries no metrics; the wall time is the switch time.
            wall_ms = (time.perf_counter() - started) * 1e3
            usage = Usage(load_ms=wall_ms, total_ms=wall_ms)
        return usage

    async def unload(self, model: str) -> None:
        await self._post_json("/api/generate", {"model": model, "keep_alive": 0})
        self._num_ctx.pop(with_latest(model), None)

    async def ping(self) -> None:
        try:
            await self.version()
        except (BackendTimeout, BadBackendResponse) as exc:
            raise BackendUnavailable(f"Ollama at {self.base_url} is not answering: {exc}") from exc

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()
        if self._pool is not None:
            await self._pool.aclose()

    # ---- request preparation ---------------------------------------------------------------------

    def _prepare(self, request: JSON, *, stream: bool) -> JSON:
        body = dict(request)
        reload = bool(body.pop(RELOAD_FLAG, False))
        body["stream"] = stream
        body.setdefault("keep_alive", self.keep_alive)
        model = with_latest(str(body.get("model", "")))
        options = body.get("options")
        if isinstance(options, dict) and "num_ctx" in options:
            wanted = int(options["num_ctx"])
            current = self._num_ctx.get(model)
            if current is not None and current != wanted and not reload:
                log.info("keeping %s at num_ctx=%d (request asked %d, no reload flag)", model, current, wanted)
                body["options"] = {k: v for k, v in options.items() if k != "num_ctx"}
            else:
                self._num_ctx[model] = wanted
        return body

    def _sync_num_ctx(self, entries: list[JSON]) -> None:
        resident: dict[str, int | None] = {}
        for e in entries:
            ctx = e.get("context_length")
            name = with_latest(str(e.get("name") or e.get("model") or ""))
            resident[name] = int(ctx) if isinstance(ctx, int) and ctx > 0 else None
        for model in list(self._num_ctx):
            if model not in resident:
                del self._num_ctx[model]  # evicted: the next load may pick any num_ctx
        for name, ctx in resident.items():
            if ctx is not None:
                self._num_ctx[name] = ctx

    # ---- HTTP plumbing ---------------------------------------------------------------------------

    async def _post_json(self, path: str, body: JSON) -> JSON:
        return await self._request_json("POST", path, body)

    async def _request_json(self, method: str, path: str, body: JSON | None) -> JSON:
        if self._pool is not None:
            return await h1_request_json(self, self._pool, method, path, body)
        url = self.base_url + path
        try:
            async with asyncio.timeout(self.deadline_s):
                resp = await self._client.request(method, url, json=body, timeout=self._timeout)
        except TimeoutError as exc:
            raise BackendTimeout(f"{method} {url} exceeded the {self.deadline_s:g}s deadline") from exc
        except httpx.HTTPError as exc:
            raise self._transport_error(url, exc) from exc
        if resp.status_code >= 400:
            raise status_error(url, resp.status_code, resp.text, body)
        return parse_object(resp.text, url)

    async def _stream(self, path: str, body: JSON) -> AsyncIterator[JSON]:
        if self._pool is not None:
            async for block, final in h1_lines(self, self._pool, path, body):
                for line in block.splitlines():
                    chunk = ndjson_chunk(line.decode("utf-8", "replace"), self.base_url + path)
                    if chunk is not None:
                        yield chunk
                if final is not None:
                    return
            return
        url = self.base_url + path
        deadline = asyncio.get_running_loop().time() + self.deadline_s
        try:
            async with asyncio.timeout_at(deadline):
                cm = self._client.stream("POST", url, json=body, timeout=self._timeout)
                resp = await cm.__aenter__()
        except TimeoutError as exc:
            raise BackendTimeout(f"POST {url} exceeded the {self.deadline_s:g}s deadline") from exc
        except httpx.HTTPError as exc:
            raise self._transport_error(url, exc) from exc
        try:
            async for chunk in self._iter_chunks(resp, url, body, deadline):
                yield chunk
        finally:
            await cm.__aexit__(None, None, None)

    async def _iter_chunks(self, resp: httpx.Response, url: str, body: JSON, deadline: float) -> AsyncIterator[JSON]:
        try:
            if resp.status_code >= 400:
                async with asyncio.timeout_at(deadline):
                    text = (await resp.aread()).decode("utf-8", "replace")
                raise status_error(url, resp.status_code, text, body)
            lines = resp.aiter_lines()
            while True:
                # The deadline guards each wait for the next line only, never the consumer's own work.
                async with asyncio.timeout_at(deadline):
                    line = await anext(lines, None)
                if line is None:
                    raise BadBackendResponse(f"stream from {url} ended before a done=true chunk")
                chunk = ndjson_chunk(line, url)
                if chunk is None:
                    continue
                yield chunk
                if chunk.get("done"):
                    return
        except TimeoutError as exc:
            raise BackendTimeout(f"POST {url} exceeded the {self.deadline_s:g}s deadline") from exc
        except httpx.HTTPError as exc:
            raise BadBackendResponse(f"stream from {url} broke mid-way: {exc!r}") from exc

    def _transport_error(self, url: str, exc: httpx.HTTPError) -> Exception:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return BackendUnavailable(f"cannot connect to Ollama at {self.base_url} ({url}): {exc}")
        if isinstance(exc, httpx.TimeoutException):
            return BackendTimeout(f"{url} timed out: {exc!r}")
        return BadBackendResponse(f"{url} failed: {exc!r}")
