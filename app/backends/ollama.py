"""Ollama backend: native /api/* and Ollama's own /v1 endpoints over an injected transport, fields passed through."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, AsyncIterator

from app.backends.base import DEFAULT_KEEP_ALIVE, JSON, LineBlock, LoadedModel, RawReply, Usage
from app.backends.ollama_wire import loaded_model, models_list, ndjson_chunk
from app.backends.transport import OllamaTransport
from app.backends.upstream_limits import check_embeddings
from app.core.errors import BackendTimeout, BackendUnavailable, BadBackendResponse

# Accepted and dropped for callers written against the old num_ctx guard; a request's num_ctx always wins now.
RELOAD_FLAG = "_reload"


class OllamaBackend:
    """One Ollama server (one GPU), over an injected transport (backends/transport.py: deadlines, typed errors).

    Pass-through: every field of a request reaches Ollama as given. The only additions: `stream` (the method
    says which) and `keep_alive` when the request has none (the service's default). `options.num_ctx` is never
    stripped or added: a request asking for a different context than the loaded model's makes Ollama reload the
    model at that size, which is what the caller asked for.
    """

    def __init__(self, transport: OllamaTransport, *, keep_alive: str | int = DEFAULT_KEEP_ALIVE) -> None:
        self.transport = transport
        self.base_url = transport.base_url
        self.name = self.base_url
        self.keep_alive = keep_alive

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
        return [loaded_model(e) for e in entries]

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

    async def manage(self, method: str, path: str, body: bytes) -> RawReply:
        return await self.transport.open_raw(method, path, body)

    async def relay_compat(self, path: str, body: bytes) -> RawReply:
        """Ollama serves /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/responses and /v1/messages
        itself: the body goes there as is and the answer comes back unparsed."""
        return await self.transport.open_raw("POST", path, body)

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
        body.pop(RELOAD_FLAG, None)
        body["stream"] = stream
        body.setdefault("keep_alive", self.keep_alive)
        return body

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
