"""Ollama-native answers → OpenAI replies (chat, completions, embeddings), whole or as SSE events, for backends
without Ollama's own /v1: tool calls streamed in OpenAI's shape (index, id, name, argument fragments)."""

from __future__ import annotations

import base64
import json
import os
import struct
import time
from collections.abc import AsyncIterator
from typing import Any

from app.backends.base import JSON
from app.backends.openai_compat import usage
from app.core.errors import BadBackendResponse

ARG_FRAGMENTS = 3  # a streamed tool call's arguments arrive in this many pieces, as OpenAI sends them


def sse(obj: Any, event: str | None = None) -> bytes:
    head = f"event: {event}\n".encode() if event else b""
    return head + b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


def envelope(kind: str, model: str) -> JSON:
    prefix = "cmpl" if kind == "text_completion" else "chatcmpl"
    return {
        "id": f"{prefix}-{os.urandom(12).hex()}",
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": "fp_swarm",
    }


def call_id(call: JSON) -> str:
    return str(call.get("id") or f"call_{os.urandom(6).hex()}")


def tool_calls(calls: list[Any]) -> list[JSON]:
    out = []
    for i, call in enumerate(calls):
        fn = call.get("function") or {}
        args = fn.get("arguments")
        out.append(
            {
                "id": call_id(call),
                "index": i,
                "type": "function",
                "function": {"name": fn.get("name", ""), "arguments": _args(args)},
            }
        )
    return out


def _args(args: Any) -> str:
    return args if isinstance(args, str) else json.dumps(args or {})


def finish_reason(final: JSON, saw_tool_calls: bool = False) -> str:
    if saw_tool_calls or (final.get("message") or {}).get("tool_calls"):
        return "tool_calls"
    return "length" if final.get("done_reason") == "length" else "stop"


def chat_message(native: JSON) -> JSON:
    msg: JSON = {"role": "assistant", "content": native.get("content") or ""}
    if native.get("thinking"):
        msg["reasoning"] = native["thinking"]
    if native.get("tool_calls"):
        msg["tool_calls"] = tool_calls(native["tool_calls"])
        msg["content"] = native.get("content") or None
    return msg


def chat_reply(final: JSON, model: str) -> JSON:
    choice = {"index": 0, "message": chat_message(final.get("message") or {}), "finish_reason": finish_reason(final)}
    return {**envelope("chat.completion", model), "choices": [choice], "usage": usage(final)}


def completion_reply(final: JSON, model: str) -> JSON:
    choice = {"text": final.get("response") or "", "index": 0, "finish_reason": finish_reason(final)}
    return {**envelope("text_completion", model), "choices": [choice], "usage": usage(final)}


def embeddings_reply(result: JSON, model: str, encoding: str) -> JSON:
    data = [
        {"object": "embedding", "index": i, "embedding": _b64(v) if encoding == "base64" else v}
        for i, v in enumerate(result.get("embeddings") or [])
    ]
    n = int(result.get("prompt_eval_count") or 0)
    return {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": n, "total_tokens": n}}


def _b64(vector: list[float]) -> str:
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def tool_call_deltas(calls: list[Any], first_index: int) -> list[JSON]:
    """One native tool-call chunk → OpenAI deltas: the call's head (index, id, type, name, empty arguments),
    then its arguments in fragments."""
    deltas: list[JSON] = []
    for n, call in enumerate(calls):
        index, fn = first_index + n, call.get("function") or {}
        head = {"index": index, "id": call_id(call), "type": "function"}
        deltas.append({"tool_calls": [{**head, "function": {"name": fn.get("name", ""), "arguments": ""}}]})
        text = _args(fn.get("arguments"))
        step = max(1, -(-len(text) // ARG_FRAGMENTS))
        for start in range(0, len(text), step):
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": text[start : start + step]}}]})
    return deltas


def _deltas(chunk: JSON, chat: bool, tool_index: int) -> list[JSON]:
    if not chat:
        text = chunk.get("response") or ""
        return [{"text": text}] if text else []
    msg = chunk.get("message") or {}
    out: list[JSON] = []
    if msg.get("thinking"):
        out.append({"reasoning": msg["thinking"]})
    if msg.get("content"):
        out.append({"content": msg["content"]})
    if msg.get("tool_calls"):
        out.extend(tool_call_deltas(msg["tool_calls"], tool_index))
    return out


async def sse_events(
    stream: AsyncIterator[JSON], first: JSON, model: str, chat: bool, with_usage: bool
) -> AsyncIterator[bytes]:
    """The SSE body of a streamed chat (chat=True) or completion: role first, deltas, one finish chunk, the usage
    chunk when asked, [DONE]."""
    env = envelope("chat.completion.chunk" if chat else "text_completion", model)

    def event(delta: JSON | None, finish: str | None) -> bytes:
        if not chat:
            choice = {"text": (delta or {}).get("text", ""), "index": 0, "finish_reason": finish}
        else:
            choice = {"index": 0, "delta": delta or {}, "finish_reason": finish}
        return sse({**env, "choices": [choice]})

    if chat:
        yield event({"role": "assistant", "content": ""}, None)
    chunk: JSON | None = first
    n_calls = 0
    while chunk is not None:
        for delta in _deltas(chunk, chat, n_calls):
            n_calls += sum(1 for c in delta.get("tool_calls", []) if "id" in c)
            yield event(delta, None)
        if chunk.get("done"):
            break
        chunk = await anext(stream, None)
    if chunk is None:
        raise BadBackendResponse("the backend stream ended before a done=true chunk")
    tail = event(None, finish_reason(chunk, n_calls > 0))
    if with_usage:
        tail += sse({**env, "choices": [], "usage": usage(chunk)})
    yield tail + b"data: [DONE]\n\n"
