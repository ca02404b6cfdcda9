"""The simulator's model management wire format: pull/delete request bodies and Ollama's pull progress lines."""

from __future__ import annotations

import hashlib
import json

from app.backends.base import JSON
from app.core.errors import BadRequest


def model_of(body: bytes) -> tuple[JSON, str]:
    try:
        request = json.loads(body or b"{}")
    except (ValueError, RecursionError) as exc:
        raise BadRequest(f"invalid JSON body: {exc}") from None
    model = request.get("model") or request.get("name") if isinstance(request, dict) else None
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("model is required", "model")
    return request, model


def pull_lines(model: str, size_gb: float) -> list[JSON]:
    """Ollama's pull stream: status lines, then one layer's download progress (total/completed bytes)."""
    total = int(size_gb * 1e9)
    digest = "sha256:" + hashlib.sha256(model.encode()).hexdigest()
    progress = [
        {"status": f"pulling {digest[7:19]}", "digest": digest, "total": total, "completed": total * k // 4}
        for k in range(5)
    ]
    tail = [{"status": s} for s in ("verifying sha256 digest", "writing manifest", "success")]
    return [{"status": "pulling manifest"}, *progress, *tail]
