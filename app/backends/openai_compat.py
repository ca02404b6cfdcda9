"""OpenAI requests → Ollama-native ones, for backends without Ollama's own /v1 (sim, embedded llama.cpp): checked
field by field (errors name the field), nothing the backend can use dropped."""

from __future__ import annotations

import json
from typing import Any

from app.backends.base import JSON
from app.core.errors import BadRequest


def model_of(body: JSON) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("you must provide a model parameter (a string)", "model")
    return model


def number(body: JSON, key: str, lo: float, hi: float, *, integer: bool = False) -> float | int | None:
    value = body.get(key)
    if value is None:
        return None
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if not ok or isinstance(value, bool) or not lo <= value <= hi:
        kind = "an integer" if integer else "a number"
        raise BadRequest(f"{key}: must be {kind} between {lo:g} and {hi:g}, got {value!r}", key)
    return value  # type: ignore[no-any-return]


def options_of(body: JSON) -> JSON:
    """OpenAI sampling fields → Ollama options, with /v1's defaults (temperature and top_p 1.0)."""
    n = body.get("n")
    if n is not None and (n != 1 or isinstance(n, bool)):
        raise BadRequest(f"n: only 1 choice per request is supported (Ollama returns one), got {n!r}", "n")
    opts: JSON = {"temperature": number(body, "temperature", 0, 2), "top_p": number(body, "top_p", 0, 1)}
    opts = {k: 1.0 if v is None else v for k, v in opts.items()}
    limit = number(body, "max_tokens", 1, 10**9, integer=True) or number(
        body, "max_completion_tokens", 1, 10**9, integer=True
    )
    if limit is not None:
        opts["num_predict"] = limit
    for key in ("frequency_penalty", "presence_penalty"):
        if (value := number(body, key, -2, 2)) is not None:
            opts[key] = value
    if (seed := number(body, "seed", -(2**63), 2**63 - 1, integer=True)) is not None:
        opts["seed"] = seed
    stop = body.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise BadRequest("stop: must be a string or an array of strings", "stop")
        opts["stop"] = stop
    return opts


def format_of(body: JSON) -> Any:
    fmt = body.get("response_format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        spec = fmt.get("json_schema")
        schema = spec.get("schema") if isinstance(spec, dict) else None
        if not isinstance(schema, dict):
            raise BadRequest("response_format.json_schema.schema: must be a JSON schema object", "response_format")
        return schema
    if kind == "text":
        return None
    raise BadRequest("response_format.type: must be 'text', 'json_object' or 'json_schema'", "response_format")


def message(msg: Any, i: int, tool_names: dict[str, str]) -> JSON:
    if not isinstance(msg, dict) or not isinstance(msg.get("role"), str):
        raise BadRequest(f"messages[{i}]: must be an object with a string 'role'", f"messages[{i}].role")
    out: JSON = {"role": msg["role"], "content": ""}
    content = msg.get("content")
    if isinstance(content, list):
        texts, images = [], []
        for part in content:
            if isinstance(part, dict) and part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            elif isinstance(part, dict) and part.get("type") == "image_url":
                url = str((part.get("image_url") or {}).get("url", ""))
                if not url.startswith("data:image/"):
                    raise BadRequest("image_url: only base64 data: URLs are supported", f"messages[{i}].content")
                images.append(url.split(",", 1)[-1])
        out["content"] = "\n".join(texts)
        if images:
            out["images"] = images
    elif content is not None:
        out["content"] = str(content)
    calls = msg.get("tool_calls")
    if isinstance(calls, list) and calls:
        out["tool_calls"] = [native_tool_call(c, i, tool_names) for c in calls]
    if msg["role"] == "tool" and msg.get("tool_call_id") in tool_names:
        out["tool_name"] = tool_names[msg["tool_call_id"]]
    return out


def native_tool_call(call: Any, i: int, tool_names: dict[str, str]) -> JSON:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict):
        raise BadRequest(f"messages[{i}].tool_calls: each needs a 'function'", f"messages[{i}].tool_calls")
    try:
        args = json.loads(fn.get("arguments") or "{}")
    except (TypeError, ValueError):
        raise BadRequest("invalid tool call arguments (not JSON)", f"messages[{i}].tool_calls") from None
    if call.get("id"):
        tool_names[str(call["id"])] = str(fn.get("name", ""))
    return {"function": {"name": fn.get("name", ""), "arguments": args}}


def chat_request(body: JSON, model: str) -> JSON:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("messages: must be a non-empty array", "messages")
    tool_names: dict[str, str] = {}
    native: JSON = {
        "model": model,
        "messages": [message(m, i, tool_names) for i, m in enumerate(messages)],
        "options": options_of(body),
    }
    if (fmt := format_of(body)) is not None:
        native["format"] = fmt
    if tools := tools_of(body):
        native["tools"] = tools
    if body.get("tool_choice") is not None:
        native["tool_choice"] = body["tool_choice"]
    if (think := think_of(body)) is not None:
        native["think"] = think
    for key in ("logprobs", "top_logprobs"):
        if body.get(key) is not None:
            native[key] = body[key]
    return native


# OpenAI's efforts as Ollama maps them onto `think` (Ollama also takes "ultra" and "max").
EFFORT_THINK: dict[str, bool | str] = {
    **{"none": False, "minimal": "low", "low": "low", "medium": "medium", "high": "high"},
    **{"xhigh": "max", "ultra": "max", "max": "max"},
}


def think_of(body: JSON) -> Any:
    """reasoning_effort / reasoning.effort → native `think` (as Ollama maps it)."""
    reasoning = body.get("reasoning")
    effort = body.get("reasoning_effort") or (reasoning.get("effort") if isinstance(reasoning, dict) else None)
    if effort is None:
        return None
    if effort not in EFFORT_THINK:
        field = "reasoning_effort" if "reasoning_effort" in body else "reasoning.effort"
        raise BadRequest(f"{field}: must be one of {', '.join(EFFORT_THINK)}, got {effort!r}", field)
    return EFFORT_THINK[effort]


def tools_of(body: JSON) -> list[Any] | None:
    """OpenAI function tools pass through to Ollama (same shape); anything else is a 400 naming the tool."""
    tools = body.get("tools")
    if tools is None or tools == []:
        return None
    if not isinstance(tools, list):
        raise BadRequest("tools: must be an array of tool definitions", "tools")
    for i, tool in enumerate(tools):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(fn, dict) or tool.get("type", "function") != "function":
            raise BadRequest(f"tools[{i}]: must be {{'type': 'function', 'function': {{'name': ...}}}}", f"tools[{i}]")
        if not isinstance(fn.get("name"), str) or not fn["name"].strip():
            raise BadRequest(f"tools[{i}].function.name: must be a non-empty string", f"tools[{i}].function.name")
        if fn.get("parameters") is not None and not isinstance(fn["parameters"], dict):
            field = f"tools[{i}].function.parameters"
            raise BadRequest(f"{field}: must be a JSON schema object", field)
    return tools


def stream_flags(body: JSON) -> tuple[bool, bool]:
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise BadRequest("stream: must be a boolean", "stream")
    opts = body.get("stream_options") or {}
    if not isinstance(opts, dict):
        raise BadRequest("stream_options: must be an object", "stream_options")
    return stream, bool(opts.get("include_usage"))


def usage(final: JSON) -> JSON:
    prompt, completion = int(final.get("prompt_eval_count") or 0), int(final.get("eval_count") or 0)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
