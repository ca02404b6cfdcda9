"""Anthropic Messages API ↔ Ollama-native chat, for backends without Ollama's own /v1/messages; token counting."""

from __future__ import annotations

import json
import math
import os
from collections.abc import AsyncIterator
from typing import Any

from app.backends.base import JSON
from app.backends.openai_compat import number
from app.backends.openai_reply import sse
from app.core.errors import BadBackendResponse, BadRequest

STOP = {"length": "max_tokens", "stop": "end_turn"}


def _fail(field: str, problem: str) -> BadRequest:
    return BadRequest(f"{field}: {problem}", field)


def _system(raw: Any) -> str:
    if raw is None or isinstance(raw, str):
        return raw or ""
    if isinstance(raw, list):
        return "\n".join(str(b.get("text", "")) for b in raw if isinstance(b, dict) and b.get("type") == "text")
    raise _fail("system", "must be a string or a list of text blocks")


def _result_text(content: Any) -> str:
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict) and b.get("type") == "text")
    return "" if content is None else str(content)


def _message(msg: Any, i: int, names: dict[str, str]) -> list[JSON]:
    """One Anthropic message → native messages (tool results become role=tool messages)."""
    field = f"messages[{i}]"
    if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
        raise _fail(f"{field}.role", "must be 'user' or 'assistant'")
    content = msg.get("content")
    if isinstance(content, str):
        return [{"role": msg["role"], "content": content}]
    if not isinstance(content, list):
        raise _fail(f"{field}.content", "must be a string or a list of content blocks")
    out: JSON = {"role": msg["role"], "content": ""}
    texts, images, calls, results = [], [], [], []
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        where = f"{field}.content[{j}]"
        if kind == "text":
            texts.append(str(block.get("text", "")))
        elif kind == "image":
            source = block.get("source") or {}
            if source.get("type") != "base64":
                raise _fail(f"{where}.source.type", "only base64 images are supported")
            images.append(str(source.get("data", "")))
        elif kind == "tool_use":
            if not isinstance(block.get("name"), str) or not isinstance(block.get("input", {}), dict):
                raise _fail(where, "a tool_use block needs a string 'name' and an object 'input'")
            names[str(block.get("id"))] = block["name"]
            calls.append(
                {"id": block.get("id"), "function": {"name": block["name"], "arguments": block.get("input") or {}}}
            )
        elif kind == "tool_result":
            name = names.get(str(block.get("tool_use_id")), "")
            results.append({"role": "tool", "content": _result_text(block.get("content")), "tool_name": name})
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            raise _fail(f"{where}.type", f"unsupported content block {kind!r}")
    out["content"] = "\n".join(texts)
    if images:
        out["images"] = images
    if calls:
        out["tool_calls"] = calls
    return results + ([out] if texts or images or calls or not results else [])


def _tools(raw: Any) -> list[JSON]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _fail("tools", "must be a list")
    out = []
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise _fail(f"tools[{i}].name", "must be a string")
        fn = {
            "name": tool["name"],
            "description": tool.get("description", ""),
            "parameters": tool.get("input_schema") or {},
        }
        out.append({"type": "function", "function": fn})
    return out


def native_request(body: JSON, model: str) -> JSON:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _fail("messages", "must be a non-empty list")
    names: dict[str, str] = {}
    native_messages = [m for i, msg in enumerate(messages) for m in _message(msg, i, names)]
    if system := _system(body.get("system")):
        native_messages.insert(0, {"role": "system", "content": system})
    options: JSON = {}
    limit = number(body, "max_tokens", 1, 10**9, integer=True)
    if limit is not None:
        options["num_predict"] = limit
    for key, lo, hi in (("temperature", 0, 1), ("top_p", 0, 1), ("top_k", 0, 10**6)):
        if (value := number(body, key, lo, hi, integer=key == "top_k")) is not None:
            options[key] = value
    if body.get("stop_sequences") is not None:
        options["stop"] = body["stop_sequences"]
    native: JSON = {"model": model, "messages": native_messages, "options": options}
    if tools := _tools(body.get("tools")):
        native["tools"] = tools
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        mapped = {"auto": "auto", "any": "required", "none": "none"}.get(str(choice.get("type")))
        native["tool_choice"] = mapped or {"type": "function", "function": {"name": choice.get("name")}}
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") == "enabled":
        native["think"] = True
    return native


def count_tokens(body: JSON) -> int:
    """An estimate (four characters a token) of the prompt's tokens: system, messages and tool definitions."""
    native = native_request({**body, "max_tokens": 1}, "count")
    text = json.dumps(native["messages"]) + json.dumps(native.get("tools") or [])
    return math.ceil(len(text) / 4)


def _usage(final: JSON) -> JSON:
    return {
        "input_tokens": int(final.get("prompt_eval_count") or 0),
        "output_tokens": int(final.get("eval_count") or 0),
    }


def _tool_block(call: JSON) -> JSON:
    fn = call.get("function") or {}
    args = fn.get("arguments")
    if isinstance(args, str):
        args = json.loads(args or "{}")
    return {"type": "tool_use", "id": f"toolu_{os.urandom(8).hex()}", "name": fn.get("name", ""), "input": args or {}}


def _stop_reason(final: JSON, tools: bool) -> str:
    return "tool_use" if tools else STOP.get(str(final.get("done_reason")), "end_turn")


def reply(final: JSON, model: str) -> JSON:
    msg = final.get("message") or {}
    content: list[JSON] = [{"type": "text", "text": msg["content"]}] if msg.get("content") else []
    calls = msg.get("tool_calls") or []
    content += [_tool_block(c) for c in calls]
    return {
        "id": f"msg_{os.urandom(12).hex()}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": _stop_reason(final, bool(calls)),
        "stop_sequence": None,
        "usage": _usage(final),
    }


async def events(stream: AsyncIterator[JSON], first: JSON, model: str) -> AsyncIterator[bytes]:
    """Anthropic's streaming events for a native chat stream: message_start, text and tool_use blocks,
    message_delta (stop reason, output tokens), message_stop."""
    start = {**reply({}, model), "content": [], "stop_reason": None, "usage": {"input_tokens": 0, "output_tokens": 0}}

    def ev(kind: str, **fields: Any) -> bytes:
        return sse({"type": kind, **fields}, kind)

    yield ev("message_start", message=start)
    index, text_open, calls = 0, False, 0
    chunk: JSON | None = first
    while chunk is not None:
        msg = chunk.get("message") or {}
        if msg.get("content"):
            if not text_open:
                yield ev("content_block_start", index=index, content_block={"type": "text", "text": ""})
                text_open = True
            yield ev("content_block_delta", index=index, delta={"type": "text_delta", "text": msg["content"]})
        for call in msg.get("tool_calls") or []:
            if text_open:
                yield ev("content_block_stop", index=index)
                index, text_open = index + 1, False
            block = _tool_block(call)
            yield ev("content_block_start", index=index, content_block={**block, "input": {}})
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
            yield ev("content_block_delta", index=index, delta=delta)
            yield ev("content_block_stop", index=index)
            index, calls = index + 1, calls + 1
        if chunk.get("done"):
            break
        chunk = await anext(stream, None)
    if chunk is None:
        raise BadBackendResponse("the backend stream ended before a done=true chunk")
    if text_open:
        yield ev("content_block_stop", index=index)
    end: JSON = {"stop_reason": _stop_reason(chunk, calls > 0), "stop_sequence": None}
    yield ev("message_delta", delta=end, usage=_usage(chunk)) + ev("message_stop")
