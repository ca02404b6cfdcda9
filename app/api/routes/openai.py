"""OpenAI-compatible proxy (/v1/*): OpenAI requests become Ollama-native backend calls; OpenAI's error shape."""

from __future__ import annotations

import base64
import os
import struct
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.api.compat_check import check_embed_input, check_messages, check_text
from app.api.disconnect import close_stream
from app.api.errors import openai_error, openai_error_body
from app.api.gateway import AUTO, Call, gateway_of
from app.api.jsonio import dumps, last_user_text, parse_body
from app.api.openai_format import (
    chat_request,
    finish_reason,
    model_of,
    number,
    options_of,
    stream_flags,
    tool_calls,
    usage,
)
from app.api.relay import RelayResponse
from app.backends.base import JSON
from app.core.errors import BadBackendResponse, BadRequest, ModelNotFound, SwarmError

router = APIRouter(prefix="/v1", tags=["openai"])

STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


async def _guard(request: Request, work: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await work()
    except SwarmError as exc:
        gateway_of(request).observe_error(exc)
        return openai_error(exc)


def _json(body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(body), media_type="application/json", headers=headers)


def _sse(obj: Any) -> bytes:
    return b"data: " + dumps(obj) + b"\n\n"


def _envelope(kind: str, call: Call) -> JSON:
    prefix = "cmpl" if kind == "text_completion" else "chatcmpl"
    return {"id": f"{prefix}-{os.urandom(12).hex()}", "object": kind, "created": int(time.time()), "model": call.model}


def chat_message(native: JSON) -> JSON:
    msg: JSON = {"role": "assistant", "content": native.get("content") or ""}
    if native.get("thinking"):
        msg["reasoning"] = native["thinking"]
    if native.get("tool_calls"):
        msg["tool_calls"] = tool_calls(native["tool_calls"])
    return msg


# ---- endpoints ---------------------------------------------------------------------------------------------


@router.post("/chat/completions")
async def chat_completions(request: Request) -> Response:
    async def work() -> Response:
        body = parse_body(await request.body())
        model = model_of(body)
        check_messages(body.get("messages"))
        native = chat_request(body, model)
        stream, include_usage = stream_flags(body)
        limit = native["options"].get("num_predict")
        call = await gateway_of(request).begin(
            request, "openai", model, lambda: last_user_text(body["messages"]), limit
        )
        native["model"] = call.model
        if not stream:
            native["stream"] = False
            final = await call.complete(request, call.backend.chat(native))
            out = _envelope("chat.completion", call)
            choice = {
                "index": 0,
                "message": chat_message(final.get("message") or {}),
                "finish_reason": finish_reason(final),
            }
            out.update(system_fingerprint="fp_swarm", choices=[choice], usage=usage(final))
            return _json(out, call.headers())
        return await _sse_response(
            request, call, call.backend.chat_stream(native), "chat.completion.chunk", include_usage
        )

    return await _guard(request, work)


@router.post("/completions")
async def completions(request: Request) -> Response:
    async def work() -> Response:
        body = parse_body(await request.body())
        model = model_of(body)
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        prompt = check_text(prompt, "prompt")
        native: JSON = {"model": model, "prompt": prompt, "options": options_of(body)}
        if isinstance(body.get("suffix"), str):
            native["suffix"] = body["suffix"]
        stream, include_usage = stream_flags(body)
        call = await gateway_of(request).begin(
            request, "openai", model, lambda: prompt, native["options"].get("num_predict")
        )
        native["model"] = call.model
        if not stream:
            native["stream"] = False
            final = await call.complete(request, call.backend.generate(native))
            out = _envelope("text_completion", call)
            choice = {"text": final.get("response") or "", "index": 0, "finish_reason": finish_reason(final)}
            out.update(system_fingerprint="fp_swarm", choices=[choice], usage=usage(final))
            return _json(out, call.headers())
        return await _sse_response(
            request, call, call.backend.generate_stream(native), "text_completion", include_usage
        )

    return await _guard(request, work)


async def _sse_response(
    request: Request, call: Call, stream: AsyncIterator[JSON], kind: str, include_usage: bool
) -> Response:
    first = await call.first(request, stream)
    headers = {**call.headers(), **STREAM_HEADERS}
    events = _events(call, first, stream, _envelope(kind, call), include_usage)
    return RelayResponse(events, headers, "text/event-stream")


def _choice(envelope: JSON, chunk: JSON | None, first: bool, finish: str | None) -> JSON | None:
    """One streamed choice for a native chunk (or the closing one when `finish` is set)."""
    if envelope["object"] == "text_completion":
        text = "" if chunk is None else chunk.get("response") or ""
        return {"text": text, "index": 0, "finish_reason": finish} if text or finish else None
    delta: JSON = {}
    msg = (chunk or {}).get("message") or {}
    if first:
        delta["role"] = "assistant"
    if msg.get("content") or first:
        delta["content"] = msg.get("content") or ""
    if msg.get("thinking"):
        delta["reasoning"] = msg["thinking"]
    if msg.get("tool_calls"):
        delta["tool_calls"] = tool_calls(msg["tool_calls"])
    return {"index": 0, "delta": delta, "finish_reason": finish} if delta or finish else None


async def _events(
    call: Call, first: JSON, stream: AsyncIterator[JSON], envelope: JSON, include_usage: bool
) -> AsyncIterator[tuple[bytes, bool]]:
    """SSE events as (bytes, is_last); the closing events go out as one last block."""
    try:
        chunk: JSON | None = first
        is_first = True
        while chunk is not None and not chunk.get("done"):
            if (choice := _choice(envelope, chunk, is_first, None)) is not None:
                call.saw(1)
                yield _sse({**envelope, "choices": [choice]}), False
                is_first = False
            chunk = await anext(stream, None)
        if chunk is None:
            raise BadBackendResponse("the backend stream ended before a done=true chunk")
        call.finish(chunk)
        tail = []
        if (choice := _choice(envelope, chunk, is_first, None)) is not None:
            tail.append(_sse({**envelope, "choices": [choice]}))
        tail.append(_sse({**envelope, "choices": [_choice(envelope, None, False, finish_reason(chunk))]}))
        if include_usage:
            tail.append(_sse({**envelope, "choices": [], "usage": usage(chunk)}))
        tail.append(b"data: [DONE]\n\n")
        yield b"".join(tail), True
    except SwarmError as exc:
        call.gateway.observe_error(exc)
        # openai-python raises APIError on a data payload with an "error" key (the status is 200 by now).
        yield _sse({"error": openai_error_body(exc, 500)}), True
    finally:
        call.settle()
        call.release()
        await close_stream(stream)


@router.post("/embeddings")
async def embeddings(request: Request) -> Response:
    async def work() -> Response:
        body = parse_body(await request.body())
        model = model_of(body)
        inputs = check_embed_input(body.get("input"))
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            raise BadRequest("encoding_format: must be 'float' or 'base64'", "encoding_format")
        native: JSON = {"model": model, "input": inputs}
        if (dims := number(body, "dimensions", 1, 65536, integer=True)) is not None:
            native["dimensions"] = dims
        call = await gateway_of(request).begin(request, "openai", model, lambda: " ".join(inputs))
        native["model"] = call.model
        result = await call.complete(request, call.backend.embed(native))
        data = [
            {"object": "embedding", "index": i, "embedding": _b64(v) if encoding == "base64" else v}
            for i, v in enumerate(result.get("embeddings") or [])
        ]
        n = int(result.get("prompt_eval_count") or 0)
        out = {"object": "list", "data": data, "model": call.model, "usage": {"prompt_tokens": n, "total_tokens": n}}
        return _json(out, call.headers())

    return await _guard(request, work)


def _b64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


@router.get("/models")
async def list_models(request: Request) -> Response:
    return await _guard(request, lambda: _models(request, None))


@router.get("/models/{model:path}")
async def retrieve_model(request: Request, model: str) -> Response:
    return await _guard(request, lambda: _models(request, model))


async def _models(request: Request, wanted: str | None) -> Response:
    gateway = gateway_of(request)
    entries = await (await gateway.backend_for(request)).installed()
    data = [
        {"id": str(e.get("name") or e.get("model")), "object": "model", "created": _epoch(e), "owned_by": "library"}
        for e in entries
    ]
    if gateway.supports_auto:
        data.append({"id": AUTO, "object": "model", "created": 0, "owned_by": "swarm-router"})
    if wanted is None:
        return _json({"object": "list", "data": data})
    for item in data:
        if wanted in (item["id"], f"{item['id']}:latest", str(item["id"]).removesuffix(":latest")):
            return _json({**item, "id": wanted})
    raise ModelNotFound(wanted, f"The model '{wanted}' does not exist")


def _epoch(entry: JSON) -> int:
    stamp = str(entry.get("modified_at") or "")
    try:
        return int(datetime.fromisoformat(stamp).timestamp())
    except ValueError:
        return 0
