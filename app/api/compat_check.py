"""Shape checks for compat request bodies: bad fields become 400s naming the field, never backend crashes."""

from __future__ import annotations

import math
import re
from typing import Any

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
