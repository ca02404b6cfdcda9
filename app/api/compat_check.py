"""Shape checks for compat request bodies: bad fields become 400s naming the field, never backend crashes."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from app.backends.openai_compat import format_of, options_of, think_of, tools_of
from app.core.errors import BadRequest

DURATION = re.compile(r"^-?\d+(\.\d+)?(ns|us|µs|ms|s|m|h)?$")
MAX_TOKENS = 1_000_000


def _fail(field: str, problem: str) -> BadRequest:
    return BadRequest(f"{field}: {problem}", field)


def check_keep_alive(value: Any, field: str = "keep_alive") -> None:
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)):
        return
    if not isinstance(value, str) or not DURATION.match(value.strip()):
        raise _fail(field, f"invalid duration {value!r} (use e.g. '5m', '30s', 0 or -1)")


def check_options(options: Any) -> None:
    if options is None:
        return
    if not isinstance(options, dict):
        raise _fail("options", "must be an object")
    for key, value in options.items():
        if isinstance(value, bool) or value is None:
            continue
        if key in ("num_predict", "num_ctx", "seed", "top_k", "num_keep", "repeat_last_n") and not isinstance(
            value, int
        ):
            raise _fail(f"options.{key}", "must be an integer")
        if isinstance(value, float) and not math.isfinite(value):
            raise _fail(f"options.{key}", "must be a finite number")
    predict = options.get("num_predict")
    if isinstance(predict, int) and predict > MAX_TOKENS:
        raise _fail("options.num_predict", f"must be at most {MAX_TOKENS}")


def check_text(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise _fail(field, "must be a string")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _fail(field, "is not valid UTF-8 text (lone surrogate)") from None
    return value


def check_messages(messages: Any, field: str = "messages") -> None:
    if not isinstance(messages, list):
        raise _fail(field, "must be a list of messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _fail(f"{field}[{i}]", "must be an object with role and content")
        if not isinstance(message.get("role"), str):
            raise _fail(f"{field}[{i}].role", "must be a string")
        content = message.get("content")
        if isinstance(content, list):
            for j, part in enumerate(content):
                if not isinstance(part, dict):
                    raise _fail(f"{field}[{i}].content[{j}]", "must be an object")
                if isinstance(part.get("text"), str):
                    check_text(part["text"], f"{field}[{i}].content[{j}].text")
                if "image_url" in part and not isinstance(part["image_url"], dict):
                    raise _fail(f"{field}[{i}].content[{j}].image_url", "must be an object with a url")
        elif content is not None:
            check_text(content, f"{field}[{i}].content")


def check_native(body: dict[str, Any], *, chat: bool) -> None:
    """/api/chat and /api/generate."""
    if "stream" in body and not isinstance(body["stream"], bool):
        raise _fail("stream", "must be true or false")
    check_options(body.get("options"))
    check_keep_alive(body.get("keep_alive"))
    if chat:
        check_messages(body.get("messages", []))
        check_native_chat_tools(body)
    else:
        for key in ("prompt", "system", "suffix"):
            if body.get(key) is not None:
                check_text(body[key], key)


def check_embed_input(value: Any, field: str = "input") -> list[str]:
    if isinstance(value, str):
        return [check_text(value, field)]
    if not isinstance(value, list) or not value:
        raise _fail(field, "must be a string or a non-empty list of strings")
    return [check_text(item, f"{field}[{i}]") for i, item in enumerate(value)]


# ---- tool-using conversations: roles, tool calls in history, tool_choice -------------------------------------

OPENAI_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
NATIVE_ROLES = ("system", "user", "assistant", "tool")


def check_roles(messages: list[Any], allowed: tuple[str, ...], field: str = "messages") -> None:
    for i, message in enumerate(messages):
        if message["role"] not in allowed:
            raise _fail(f"{field}[{i}].role", f"must be one of {', '.join(allowed)}, got {message['role']!r}")


def check_tool_calls(messages: list[Any], *, native: bool, field: str = "messages") -> None:
    """Tool calls in the history: a list of {function: {name, arguments}}; arguments are a JSON string in OpenAI's
    format, an object in Ollama's."""
    for i, message in enumerate(messages):
        calls = message.get("tool_calls")
        if calls is None:
            continue
        where = f"{field}[{i}].tool_calls"
        if not isinstance(calls, list):
            raise _fail(where, "must be a list")
        for j, call in enumerate(calls):
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
                raise _fail(f"{where}[{j}].function.name", "must be a non-empty string")
            args = fn.get("arguments")
            if native and args is not None and not isinstance(args, dict):
                raise _fail(f"{where}[{j}].function.arguments", "must be an object")
            if not native:
                if not isinstance(args, str):
                    raise _fail(f"{where}[{j}].function.arguments", "must be a JSON string")
                try:
                    json.loads(args or "{}")
                except ValueError:
                    raise _fail(f"{where}[{j}].function.arguments", "is not valid JSON") from None


def _tool_names(tools: Any, nested: bool) -> set[str]:
    names: set[str] = set()
    for tool in tools if isinstance(tools, list) else []:
        fn = tool.get("function") if nested and isinstance(tool, dict) else tool
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            names.add(fn["name"])
    return names


def check_tool_choice(body: dict[str, Any], words: tuple[str, ...], *, nested: bool) -> None:
    """OpenAI chat (nested: {"type": "function", "function": {"name"}}) or Responses ({"type": "function", "name"})."""
    choice = body.get("tool_choice")
    if choice is None:
        return
    if isinstance(choice, str):
        if choice not in words:
            raise _fail("tool_choice", f"must be one of {', '.join(words)} or a function choice, got {choice!r}")
        if choice != "none" and not body.get("tools"):
            raise _fail("tool_choice", "is only allowed when tools are given")
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if isinstance(kind, str) and kind and kind != "function":
        return  # allowed_tools, custom, hosted tools: valid choices the router has no view on (Ollama decides)
    fn = choice.get("function") if nested and isinstance(choice, dict) else choice
    name = fn.get("name") if isinstance(fn, dict) else None
    if not isinstance(choice, dict) or kind != "function" or not isinstance(name, str):
        shape = "{'type': 'function', 'function': {'name': ...}}" if nested else "{'type': 'function', 'name': ...}"
        raise _fail("tool_choice", f"must be one of {', '.join(words)} or {shape}")
    if name not in _tool_names(body.get("tools"), nested):
        raise _fail("tool_choice", f"names the function {name!r}, which is not among the tools")


def check_stream(body: dict[str, Any]) -> bool:
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise _fail("stream", "must be a boolean")
    return stream


def check_openai_chat(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _fail("messages", "must be a non-empty array")
    check_messages(messages)
    check_roles(messages, OPENAI_ROLES)
    check_tool_calls(messages, native=False)
    for check in (options_of, format_of, tools_of, think_of):
        check(body)  # the standard fields' types and ranges; the body itself goes on unchanged
    check_tool_choice(body, ("none", "auto", "required"), nested=True)


def check_native_chat_tools(body: dict[str, Any]) -> None:
    messages = body.get("messages") or []
    check_roles(messages, NATIVE_ROLES)
    check_tool_calls(messages, native=True)


def check_responses(body: dict[str, Any]) -> bool:
    raw = body.get("input")
    if not isinstance(raw, str) and not (isinstance(raw, list) and raw):
        raise _fail("input", "must be a string or a non-empty list of input items")
    for i, item in enumerate(raw if isinstance(raw, list) else []):
        if not isinstance(item, dict):
            raise _fail(f"input[{i}]", "must be an object")
        role = item.get("role")
        if item.get("type", "message") == "message" and role not in ("user", "assistant", "system", "developer"):
            raise _fail(f"input[{i}].role", f"must be user, assistant, system or developer, got {role!r}")
    check_tool_choice(body, ("none", "auto", "required"), nested=False)
    return check_stream(body)


def check_anthropic(body: dict[str, Any], *, counting: bool = False) -> bool:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _fail("messages", "must be a non-empty list")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            got = message.get("role") if isinstance(message, dict) else message
            raise _fail(f"messages[{i}].role", f"must be 'user' or 'assistant', got {got!r}")
    limit = body.get("max_tokens")
    if not counting and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise _fail("max_tokens", "is required: a positive integer")
    choice = body.get("tool_choice")
    if choice is not None:
        kind = choice.get("type") if isinstance(choice, dict) else None
        if kind not in ("auto", "any", "tool", "none"):
            raise _fail("tool_choice.type", "must be auto, any, tool or none")
        if kind == "tool" and choice.get("name") not in _tool_names(body.get("tools"), False):
            raise _fail("tool_choice.name", "must name one of the tools")
    return check_stream(body)
