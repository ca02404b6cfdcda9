"""Backend protocol: what the router needs from a GPU (Ollama, simulated, or embedded llama.cpp).

Requests and responses are Ollama-native JSON dicts (see shared/reference/ollama_api.md), so the Ollama
backend passes fields through untouched and the sim / local backends speak the same shapes. `Usage` is the
typed view of the timing and token fields every final response carries.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

JSON = dict[str, Any]

DEFAULT_KEEP_ALIVE = "10m"
# One relayed block of whole NDJSON lines, with the parsed done=true chunk when the block ends with it.
LineBlock = tuple[bytes, JSON | None]


def ndjson_line(obj: object) -> bytes:
    """Compact JSON and a newline; ensure_ascii keeps U+2028 escaped (ollama-python splits lines on it)."""
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


async def chunk_lines(stream: AsyncIterator[JSON]) -> AsyncGenerator[LineBlock, None]:
    """A chunk stream in relay_lines' shape (for backends that produce dicts): one line per chunk."""
    try:
        async for chunk in stream:
            yield ndjson_line(chunk), (chunk if chunk.get("done") else None)
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


@dataclass(frozen=True)
class LoadedModel:
    """One entry of /api/ps."""

    name: str
    size: int  # bytes
    size_vram: int  # bytes
    expires_at: str | None = None

    @property
    def size_gb(self) -> float:
        return self.size / 1e9


@dataclass(frozen=True)
class RawReply:
    """A relayed answer as the upstream gave it: status, content type and body bytes as they arrive."""

    status: int
    media_type: str | None
    body: AsyncIterator[bytes]


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    eval_tokens: int = 0
    load_ms: float = 0.0
    prompt_eval_ms: float = 0.0
    eval_ms: float = 0.0
    total_ms: float = 0.0

    @classmethod
    def from_response(cls, body: JSON) -> Usage:
        """Read Ollama's final-chunk fields (durations are nanoseconds)."""

        def ms(key: str) -> float:
            return float(body.get(key) or 0) / 1e6

        return cls(
            prompt_tokens=int(body.get("prompt_eval_count") or 0),
            eval_tokens=int(body.get("eval_count") or 0),
            load_ms=ms("load_duration"),
            prompt_eval_ms=ms("prompt_eval_duration"),
            eval_ms=ms("eval_duration"),
            total_ms=ms("total_duration"),
        )


@runtime_checkable
class Backend(Protocol):
    """A GPU with models on it. Every method may raise app.core.errors.BackendError subclasses:
    BackendUnavailable, ModelNotFound, BackendTimeout, BadBackendResponse."""

    name: str  # identity of the GPU, e.g. the Ollama base URL, "sim", "local"

    async def chat(self, request: JSON) -> JSON:
        """POST /api/chat with stream=false semantics; returns the final response object."""
        ...

    def chat_stream(self, request: JSON) -> AsyncIterator[JSON]:
        """POST /api/chat streaming: yields each NDJSON chunk; the last has done=true and the usage fields."""
        ...

    async def generate(self, request: JSON) -> JSON: ...

    def generate_stream(self, request: JSON) -> AsyncIterator[JSON]: ...

    def relay_lines(self, request: JSON, *, chat: bool) -> AsyncGenerator[LineBlock, None]:
        """The streaming answer of /api/chat (chat=True) or /api/generate as NDJSON bytes in blocks of whole lines,
        the parsed done chunk alongside the last block: what the proxy relays (Ollama's own bytes, unparsed)."""
        ...

    async def embed(self, request: JSON) -> JSON:
        """POST /api/embed."""
        ...

    async def installed(self) -> list[JSON]:
        """/api/tags 'models' entries (name, model, size, details, ...)."""
        ...

    async def loaded(self) -> list[LoadedModel]:
        """/api/ps: what is resident right now."""
        ...

    async def show(self, model: str) -> JSON: ...

    async def version(self) -> str: ...

    async def load(self, model: str, keep_alive: str | int = DEFAULT_KEEP_ALIVE) -> Usage:
        """Make the model resident (empty generate request); returns usage with load_ms measured."""
        ...

    async def unload(self, model: str) -> None:
        """Evict the model (keep_alive: 0)."""
        ...

    async def manage(self, method: str, path: str, body: bytes) -> RawReply:
        """Model management (/api/pull, /api/push, /api/create, /api/copy, /api/delete), relayed as the backend
        answers it; Unsupported where the backend has no such thing."""
        ...

    async def relay_compat(self, path: str, body: bytes) -> RawReply:
        """An OpenAI- or Anthropic-format call (/v1/chat/completions, /v1/completions, /v1/embeddings, /v1/responses,
        /v1/messages, /v1/messages/count_tokens): Ollama answers it with its own endpoint (the body passes as is);
        in-process backends translate to and from the native calls (backends/compat.py)."""
        ...

    async def ping(self) -> None:
        """Raise BackendUnavailable when the backend cannot serve."""
        ...

    async def aclose(self) -> None: ...
