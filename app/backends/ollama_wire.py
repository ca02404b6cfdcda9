"""Ollama wire format: parsing responses and NDJSON lines, and mapping HTTP errors to the exception tree."""

from __future__ import annotations

import json
from typing import Any

from app.backends.base import JSON, LoadedModel
from app.backends.upstream_limits import check_counts
from app.core.errors import BadBackendResponse, ModelNotFound


def ndjson_chunk(line: str, url: str) -> JSON | None:
    """One line of an NDJSON stream: None for a blank line; an {"error"} line raises."""
    if not line.strip():
        return None
    chunk = parse_object(line, url)
    if "error" in chunk:
        raise BadBackendResponse(f"Ollama stream from {url} failed: {chunk['error']}")
    return chunk


def error_text(text: str) -> tuple[str, bool]:
    """Ollama's error message and whether it came as a native {"error": ...} body."""
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip(), False
    if isinstance(data, dict) and "error" in data:
        return str(data["error"]), True
    return text.strip(), False


def status_error(url: str, status: int, text: str, body: JSON | None) -> Exception:
    message, native = error_text(text)
    # A JSON {"error": ...} 404 is a missing model; a plain-text "404 page not found" is a missing route.
    if status == 404 and native:
        return ModelNotFound(str((body or {}).get("model", "")), message)
    return BadBackendResponse(f"{url} returned HTTP {status}: {message}", status=status)


def parse_object(text: str, url: str) -> JSON:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise BadBackendResponse(f"invalid JSON from {url}: {text[:200]!r}") from exc
    except RecursionError:
        raise BadBackendResponse(f"JSON from {url} is nested too deeply") from None
    if not isinstance(data, dict):
        raise BadBackendResponse(f"expected a JSON object from {url}, got {type(data).__name__}")
    check_counts(data, url)
    return data


def models_list(body: JSON, path: str) -> list[JSON]:
    models = body.get("models")
    if models is None:
        return []
    if not isinstance(models, list):
        raise BadBackendResponse(f"{path}: 'models' is not a list")
    return [m for m in models if isinstance(m, dict)]


def _size(entry: dict[str, Any], key: str, default: int = 0) -> int:
    value = entry.get(key, default)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 2**63:
        raise BadBackendResponse(f"/api/ps: {key} of a loaded model is not a byte count: {str(value)[:50]!r}")
    return int(value)


def loaded_model(entry: dict[str, Any]) -> LoadedModel:
    name = entry.get("name") or entry.get("model") or ""
    if not isinstance(name, str):
        raise BadBackendResponse(f"/api/ps: a loaded model's name is not a string: {str(name)[:50]!r}")
    size = _size(entry, "size")
    return LoadedModel(
        name=name, size=size, size_vram=_size(entry, "size_vram", size), expires_at=entry.get("expires_at")
    )


def with_latest(model: str) -> str:
    return model if ":" in model else model + ":latest"
