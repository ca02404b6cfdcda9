"""OpenAI Responses API (stateless) ↔ Ollama-native chat, for backends without Ollama's own /v1/responses."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from app.backends.base import JSON
from app.backends.openai_compat import EFFORT_THINK, number
from app.backends.openai_reply import call_id, sse
from app.core.errors import BadBackendResponse, BadRequest


def _fail(field: str, problem: str) -> BadRequest:
    return BadRequest(f"{field}: {problem}", field)


def _text_parts(content: Any, field: str) -> tuple[str, list[str]]:
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise _fail(field, "must be a string or a list of content parts")
    texts, images = [], []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            texts.append(str(part.get("text", "")))
        elif kind == "input_image":
            url = str(part.get("image_url") or "")
            if not url.startswith("data:image/"):
                raise _fail(f"{field}[{j}].image_url", "only base64 data: URLs are supported")
            images.append(url.split(",", 1)[-1])
        else:
            raise _fail(f"{field}[{j}].type", f"unsupported content part {kind!r}")
    return "\n".join(texts), images


def _items(raw: Any) -> list[JSON]:
    """`input` items → native messages (function calls and their outputs included)."""
    if isinstance(raw, str):
        return [{"role": "user", "content": raw}]
    if not isinstance(raw, list) or not raw:
        raise _fail("input", "must be a string or a non-empty list of input items")
    out: list[JSON] = []
    names: dict[str, str] = {}
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise _fail(f"input[{i}]", "must be an object")
        kind = item.get("type", "message")
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "assistant", "system", "developer"):
                raise _fail(f"input[{i}].role", f"must be user, assistant, system or developer, got {role!r}")
            text, images = _text_parts(item.get("content"), f"input[{i}].content")
            msg: JSON = {"role": "system" if role == "developer" else role, "content": text}
            if images:
                msg["images"] = images
            out.append(msg)
        elif kind == "function_call":
            name, args = item.get("name"), item.get("arguments")
            if not isinstance(name, str) or not isinstance(args, str):
                raise _fail(f"input[{i}]", "a function_call needs a string 'name' and 'arguments'")
            try:
                parsed = json.loads(args or "{}")
            except ValueError:
                raise _fail(f"input[{i}].arguments", "must be a JSON string") from None
            names[str(item.get("call_id"))] = name
            call = {"id": item.get("call_id"), "function": {"name": name, "arguments": parsed}}
            if out and out[-1]["role"] == "assistant" and "tool_calls" in out[-1]:
                out[-1]["tool_calls"].append(call)
            else:
                out.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            output = item.get("output")
            text = output if isinstance(output, str) else json.dumps(output)
            out.append({"role": "tool", "content": text, "tool_name": names.get(str(item.get("call_id")), "")})
        else:
            raise _fail(f"input[{i}].type", f"unsupported input item {kind!r}")
    return out


def _tools(raw: Any) -> list[JSON]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _fail("tools", "must be a list")
    out = []
    for i, tool in enumerate(raw):
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("name"), str):
            raise _fail(f"tools[{i}]", "only {'type': 'function', 'name': ...} tools are supported here")
        fn = {k: tool[k] for k in ("name", "description", "parameters") if tool.get(k) is not None}
        out.append({"type": "function", "function": fn})
    return out


def native_request(body: JSON, model: str) -> JSON:
    if body.get("previous_response_id") is not None:
        raise _fail("previous_response_id", "this server is stateless: send the whole conversation as input")
    messages = _items(body.get("input"))
    if isinstance(body.get("instructions"), str):
        messages.insert(0, {"role": "system", "content": body["instructions"]})
    options: JSON = {}
    for key, lo, hi in (("temperature", 0, 2), ("top_p", 0, 1)):
        if (value := number(body, key, lo, hi)) is not None:
            options[key] = value
    if (limit := number(body, "max_output_tokens", 1, 10**9, integer=True)) is not None:
        options["num_predict"] = limit
    native: JSON = {"model": model, "messages": messages, "options": options}
    if tools := _tools(body.get("tools")):
        native["tools"] = tools
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        choice = {"type": "function", "function": {"name": choice.get("name")}}
    if choice is not None:
        native["tool_choice"] = choice
    fmt = ((body.get("text") or {}).get("format") or {}) if isinstance(body.get("text"), dict) else {}
    if fmt.get("type") == "json_schema" and isinstance(fmt.get("schema"), dict):
        native["format"] = fmt["schema"]
    elif fmt.get("type") == "json_object":
        native["format"] = "json"
    effort = (body.get("reasoning") or {}).get("effort") if isinstance(body.get("reasoning"), dict) else None
    if effort is not None:
        if effort not in EFFORT_THINK:
            raise _fail("reasoning.effort", f"must be one of {', '.join(EFFORT_THINK)}")
        native["think"] = EFFORT_THINK[effort]
    return native


def _usage(final: JSON) -> JSON:
    i, o = int(final.get("prompt_eval_count") or 0), int(final.get("eval_count") or 0)
    return {"input_tokens": i, "output_tokens": o, "total_tokens": i + o}


def _text_item(item_id: str, text: str, status: str = "completed") -> JSON:
    part = {"type": "output_text", "text": text, "annotations": []}
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": [part]}


def _call_item(call: JSON, status: str = "completed") -> JSON:
    fn = call.get("function") or {}
    args = fn.get("arguments")
    return {
        "id": f"fc_{os.urandom(8).hex()}",
        "type": "function_call",
        "status": status,
        "call_id": call_id(call),
        "name": fn.get("name", ""),
        "arguments": args if isinstance(args, str) else json.dumps(args or {}),
    }


def response_object(body: JSON, model: str, output: list[JSON], final: JSON | None, rid: str) -> JSON:
    length = final is not None and final.get("done_reason") == "length"
    status = "in_progress" if final is None else "incomplete" if length else "completed"
    return {
        "id": rid,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model,
        "output": output,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if length else None,
        "instructions": body.get("instructions"),
        "tools": body.get("tools") or [],
        "tool_choice": body.get("tool_choice") or "auto",
        "parallel_tool_calls": True,
        "usage": None if final is None else _usage(final),
    }


def reply(body: JSON, final: JSON, model: str) -> JSON:
    msg = final.get("message") or {}
    output = [_text_item(f"msg_{os.urandom(8).hex()}", msg["content"])] if msg.get("content") else []
    output += [_call_item(c) for c in msg.get("tool_calls") or []]
    return response_object(body, model, output, final, f"resp_{os.urandom(12).hex()}")


async def events(body: JSON, stream: AsyncIterator[JSON], first: JSON, model: str) -> AsyncIterator[bytes]:
    """The Responses streaming events for a native chat stream (text first, then each function call)."""
    rid, mid, seq = f"resp_{os.urandom(12).hex()}", f"msg_{os.urandom(8).hex()}", 0

    def ev(kind: str, **fields: Any) -> bytes:
        nonlocal seq
        seq += 1
        return sse({"type": kind, "sequence_number": seq - 1, **fields}, kind)

    yield ev("response.created", response=response_object(body, model, [], None, rid))
    yield ev("response.in_progress", response=response_object(body, model, [], None, rid))
    text, output = "", []
    chunk: JSON | None = first
    while chunk is not None:
        msg = chunk.get("message") or {}
        if msg.get("content"):
            if not text:
                yield ev(
                    "response.output_item.added",
                    output_index=0,
                    item=_text_item(mid, "", "in_progress") | {"content": []},
                )
                part = {"type": "output_text", "text": "", "annotations": []}
                yield ev("response.content_part.added", item_id=mid, output_index=0, content_index=0, part=part)
            text += msg["content"]
            yield ev("response.output_text.delta", item_id=mid, output_index=0, content_index=0, delta=msg["content"])
        for call in msg.get("tool_calls") or []:
            output.append(_call_item(call))
        if chunk.get("done"):
            break
        chunk = await anext(stream, None)
    if chunk is None:
        raise BadBackendResponse("the backend stream ended before a done=true chunk")
    items: list[JSON] = []
    if text:
        done = _text_item(mid, text)
        yield ev("response.output_text.done", item_id=mid, output_index=0, content_index=0, text=text)
        yield ev("response.content_part.done", item_id=mid, output_index=0, content_index=0, part=done["content"][0])
        yield ev("response.output_item.done", output_index=0, item=done)
        items.append(done)
    for item in output:
        index = len(items)
        yield ev(
            "response.output_item.added", output_index=index, item={**item, "arguments": "", "status": "in_progress"}
        )
        yield ev(
            "response.function_call_arguments.delta", item_id=item["id"], output_index=index, delta=item["arguments"]
        )
        yield ev(
            "response.function_call_arguments.done", item_id=item["id"], output_index=index, arguments=item["arguments"]
        )
        yield ev("response.output_item.done", output_index=index, item=item)
        items.append(item)
    final = response_object(body, model, items, chunk, rid)
    yield ev("response.incomplete" if final["status"] == "incomplete" else "response.completed", response=final)
