"""relay_compat for backends without Ollama's own /v1 endpoints (sim, embedded llama.cpp): the OpenAI, Responses and
Anthropic calls translated to native chat / generate / embed and the answers translated back, streamed or whole."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any, Protocol

from app.backends import anthropic_compat, openai_compat, openai_reply, responses_compat
from app.backends.base import JSON, RawReply
from app.core.errors import BadRequest, NotFound, SwarmError

SSE = "text/event-stream"
JSON_TYPE = "application/json"
PATHS = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/embeddings",
    "/v1/responses",
    "/v1/messages",
)


class NativeInference(Protocol):
    async def chat(self, request: JSON) -> JSON: ...

    def chat_stream(self, request: JSON) -> AsyncIterator[JSON]: ...

    async def generate(self, request: JSON) -> JSON: ...

    def generate_stream(self, request: JSON) -> AsyncIterator[JSON]: ...

    async def embed(self, request: JSON) -> JSON: ...


def _whole(obj: Any, status: int = 200) -> RawReply:
    async def body() -> AsyncIterator[bytes]:
        yield json.dumps(obj, separators=(",", ":")).encode()

    return RawReply(status, JSON_TYPE, body())


def error_event(path: str, exc: SwarmError) -> bytes:
    """A mid-stream failure as that API's own error event (the status is already 200 by then)."""
    if path == "/v1/messages":
        return openai_reply.sse({"type": "error", "error": {"type": "api_error", "message": exc.message}}, "error")
    if path == "/v1/responses":
        error = {"type": "error", "code": exc.code, "message": exc.message, "sequence_number": 0}
        return openai_reply.sse(error, "error")
    return openai_reply.sse({"error": {"message": exc.message, "type": "api_error", "param": None, "code": exc.code}})


async def _streamed(
    backend: NativeInference, path: str, native: JSON, chat: bool, build: Callable[..., AsyncIterator[bytes]]
) -> RawReply:
    """Open the native stream and pull its first chunk (so errors before any byte get a real status)."""
    stream = backend.chat_stream(native) if chat else backend.generate_stream(native)
    try:
        first = await anext(stream)
    except BaseException:
        await stream.aclose()  # type: ignore[attr-defined]
        raise

    async def body() -> AsyncIterator[bytes]:
        try:
            async for piece in build(stream, first):
                yield piece
        except SwarmError as exc:
            yield error_event(path, exc)
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    return RawReply(200, SSE, body())


def _stream_flag(body: JSON) -> bool:
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("stream: must be a boolean", "stream")
    return stream


async def translate(backend: NativeInference, path: str, raw: bytes) -> RawReply:
    """One compatible call answered by a backend that speaks only the native API."""
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"invalid JSON body: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    model = openai_compat.model_of(body)
    if path in ("/v1/chat/completions", "/v1/completions"):
        return await _openai(backend, body, model, chat=path == "/v1/chat/completions")
    if path == "/v1/embeddings":
        return await _embeddings(backend, body, model)
    if path == "/v1/responses":
        native = responses_compat.native_request(body, model)
        if not _stream_flag(body):
            return _whole(responses_compat.reply(body, await backend.chat(native), model))
        return await _streamed(backend, path, native, True, lambda s, f: responses_compat.events(body, s, f, model))
    if path == "/v1/messages":
        native = anthropic_compat.native_request(body, model)
        if not _stream_flag(body):
            return _whole(anthropic_compat.reply(await backend.chat(native), model))
        return await _streamed(backend, path, native, True, lambda s, f: anthropic_compat.events(s, f, model))
    raise NotFound(f"{path} is not a compatible endpoint")


async def _openai(backend: NativeInference, body: JSON, model: str, *, chat: bool) -> RawReply:
    stream, include_usage = openai_compat.stream_flags(body)
    if chat:
        native = openai_compat.chat_request(body, model)
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise BadRequest("prompt: must be a string", "prompt")
        native = {"model": model, "prompt": prompt, "options": openai_compat.options_of(body)}
        if isinstance(body.get("suffix"), str):
            native["suffix"] = body["suffix"]
    if not stream:
        if chat:
            return _whole(openai_reply.chat_reply(await backend.chat(native), model))
        return _whole(openai_reply.completion_reply(await backend.generate(native), model))
    path = "/v1/chat/completions" if chat else "/v1/completions"
    return await _streamed(
        backend, path, native, chat, lambda s, f: openai_reply.sse_events(s, f, model, chat, include_usage)
    )


async def _embeddings(backend: NativeInference, body: JSON, model: str) -> RawReply:
    raw = body.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
        raise BadRequest("input: must be a string or a non-empty list of strings", "input")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise BadRequest("encoding_format: must be 'float' or 'base64'", "encoding_format")
    native: JSON = {"model": model, "input": inputs}
    if (dims := openai_compat.number(body, "dimensions", 1, 65536, integer=True)) is not None:
        native["dimensions"] = dims
    return _whole(openai_reply.embeddings_reply(await backend.embed(native), model, encoding))
