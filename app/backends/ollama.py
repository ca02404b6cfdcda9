"""Ollama backend: native /api/* over an injected transport, num_ctx guard, keep_alive on every call."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator

from app.backends.base import DEFAULT_KEEP_ALIVE, JSON, LineBlock, LoadedModel, RawReply, Usage
from app.backends.ollama_wire import loaded_model, models_list, ndjson_chunk, with_latest
from app.backends.transport import OllamaTransport
from app.backends.upstream_limits import check_embeddings
from app.core.errors import BackendTimeout, BackendUnavailable, BadBackendResponse

log = logging.getLogger(__name__)

# Request key that allows a differing options.num_ctx through (i.e. the plan means to reload the model).
RELOAD_FLAG = "_reload"


class OllamaBackend:
    """One Ollama server (one GPU), over an injected transport (backends/transport.py: deadlines, typed errors).

    num_ctx: Ollama reloads a model whenever a load-time option differs from the running one, so this
    backend remembers the num_ctx each model was loaded with (from the requests it sent and from
    /api/ps `context_length`) and strips a differing `options.num_ctx` unless the request carries
    `"_reload": True` (stripped before sending). The record of a model is dropped on unload and when
    /api/ps no longer lists it, so call `loaded()` regularly (the orchestrator does, every step).
    """

    def __init__(self, transport: OllamaTransport, *, keep_alive: str | int = DEFAULT_KEEP_ALIVE) -> None:
        self.transport = transport
        self.base_url = transport.base_url
        self.name = self.base_url
        self.keep_alive = keep_alive
        self._num_ctx: dict[str, int] = {}

    @property
    def deadline_s(self) -> float:
        return self.transport.deadline_s

    # ---- inference -------------------------------------------------------------------------------

    async def chat(self, request: JSON) -> JSON:
        return await self._post_json("/api/chat", self._prepare(request, stream=False))

    def chat_stream(self, request: JSON) -> AsyncIterator[JSON]:
        return self._stream("/api/chat", self._prepare(request, stream=True))

    async def generate(self, request: JSON) -> JSON:
        return await self._post_json("/api/generate", self._prepare(request, stream=False))

    def generate_stream(self, request: JSON) -> AsyncIterator[JSON]:
        return self._stream("/api/generate", self._prepare(request, stream=True))

    def relay_lines(self, request: JSON, *, chat: bool) -> AsyncGenerator[LineBlock, None]:
        """The streaming answer as Ollama's own NDJSON bytes, in blocks of whole lines, with the parsed done
        chunk alongside the last block: what the proxy relays without re-encoding."""
        path = "/api/chat" if chat else "/api/generate"
        return self.transport.stream_lines(path, self._prepare(request, stream=True))

    async def embed(self, request: JSON) -> JSON:
        body = dict(request)
        body.pop(RELOAD_FLAG, None)
        body.setdefault("keep_alive", self.keep_alive)
        return check_embeddings(await self._post_json("/api/embed", body), self.base_url + "/api/embed")

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

    async def manage(self, method: str, path: str, body: bytes) -> RawReply:
        return await self.transport.open_raw(method, path, body)

    async def ping(self) -> None:
        try:
            await self.version()
        except (BackendTimeout, BadBackendResponse) as exc:
            raise BackendUnavailable(f"Ollama at {self.base_url} is not answering: {exc}") from exc

    async def aclose(self) -> None:
        await self.transport.aclose()

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
        return await self.transport.request_json("POST", path, body)

    async def _request_json(self, method: str, path: str, body: JSON | None) -> JSON:
        return await self.transport.request_json(method, path, body)

    async def _stream(self, path: str, body: JSON) -> AsyncIterator[JSON]:
        url = self.base_url + path
        blocks = self.transport.stream_lines(path, body)
        try:
            async for block, final in blocks:
                for line in block.splitlines():
                    chunk = ndjson_chunk(line.decode("utf-8", "replace"), url)
                    if chunk is not None:
                        yield chunk
                if final is not None:
                    return
        finally:
            await blocks.aclose()
