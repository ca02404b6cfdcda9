"""JSON on the compatibility endpoints: compact encoding, request bodies parsed and checked with errors naming the
field."""

from __future__ import annotations

import json
from typing import Any

from app.backends.base import JSON
from app.core.errors import BadRequest


def dumps(obj: Any) -> bytes:
    # ensure_ascii keeps U+2028 escaped: ollama-python splits lines on it otherwise.
    return json.dumps(obj, separators=(",", ":")).encode()


def parse_body(raw: bytes) -> JSON:
    if not raw.strip():
        raise BadRequest("missing request body")
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"invalid JSON body: {exc}") from None
    except RecursionError:
        raise BadRequest("invalid JSON body: nested too deeply") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    _check_surrogates(raw, body)
    return body


def _check_surrogates(raw: bytes, body: Any) -> None:
    if b"\\ud" in raw or b"\\uD" in raw:  # only an escape can carry a lone surrogate into the parsed body
        where = lone_surrogate(body)
        if where is not None:
            raise BadRequest(f"{where}: contains a lone UTF-16 surrogate (not valid Unicode)", where.split(".")[0])


def check_relayed(raw: bytes) -> None:
    """A body relayed to the upstream as is (model management): a lone surrogate anywhere is a 400 naming the
    field; whether the rest is valid is the upstream's call."""
    if b"\\ud" not in raw and b"\\uD" not in raw:
        return
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return
    _check_surrogates(raw, body)


def _bad(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def lone_surrogate(obj: Any) -> str | None:
    """The dotted path of the first string (or key) holding a lone surrogate, else None (iterative walk)."""
    stack: list[tuple[str, Any]] = [("", obj)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if _bad(value):
                return path or "body"
        elif isinstance(value, dict):
            for key, item in value.items():
                child = f"{path}.{key}" if path else str(key)
                if _bad(key):
                    return path or "body"
                stack.append((child, item))
        elif isinstance(value, list):
            stack.extend((f"{path}.{i}" if path else str(i), item) for i, item in enumerate(value))
    return None


def require_model(body: JSON, *keys: str) -> str:
    for key in keys or ("model",):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value
    raise BadRequest(f"{keys[0] if keys else 'model'} is required", keys[0] if keys else "model")


def last_user_text(messages: Any) -> str:
    """The text auto-routing classifies: the last user message (text parts of a multi-part content)."""
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content or "")
    return ""
