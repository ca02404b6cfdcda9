"""Derived agent defaults for a model known only by its /api/tags entry (name and size on disk)."""

from __future__ import annotations

import math
from typing import Any

from app.core.errors import AgentFileError
from app.domain.models import TASK_TYPES

MAX_SIZE = 2**50  # bytes on disk of one model: far beyond any real one
MAX_NAME = 300  # characters of a model name

# Name hints that tilt a size-based prior towards a specialty.
SPECIALTIES = {
    "code": ("code", "coder", "starcoder", "deepseek-coder", "codellama"),
    "math": ("math", "qwq", "deepseek-r1"),
}


def size_prior(size_gb: float) -> float:
    """Capability prior from model size: log-linear in the size, clipped to [0.3, 0.9]."""
    return round(min(0.9, max(0.3, 0.45 + 0.11 * math.log2(max(size_gb, 0.05)))), 3)


def tag_name(tag: dict[str, Any]) -> str:
    """The model name of an /api/tags row; AgentFileError when it is not a usable name."""
    name = tag.get("name") or tag.get("model")
    if not isinstance(name, str) or not 0 < len(name) <= MAX_NAME or not name.isprintable():
        raise AgentFileError(f"installed model: field 'name' is not a model name: {str(name)[:50]!r}")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise AgentFileError(f"installed model: field 'name' is not valid text: {name[:50]!r}") from None
    return name


def agent_from_tag(tag: dict[str, Any]) -> dict[str, Any]:
    """An agent entry from one /api/tags row: VRAM = weights + 20% (KV cache, runtime), load time and cost by size;
    AgentFileError when the row's name or size is not usable (hostile or broken upstream data)."""
    name, size = tag_name(tag), tag.get("size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int | float) or not 0 <= size <= MAX_SIZE):
        raise AgentFileError(f"installed model {name!r}, field 'size': not a byte count: {str(size)[:50]!r}")
    size_gb = max(float(size or 0) / 1e9, 0.05)
    base = size_prior(size_gb)
    caps = dict.fromkeys(TASK_TYPES, base)
    lowered = name.lower()
    for task, hints in SPECIALTIES.items():
        if any(h in lowered for h in hints):
            caps[task] = round(min(0.95, base + 0.15), 3)
    return {
        "name": name,
        "cost_per_token": round(0.1 + 0.15 * size_gb, 3),
        "max_ctx": 8192,
        "capabilities": caps,
        "vram_gb": round(size_gb * 1.2 + 0.1, 2),
        "load_time_ms": round(300 + 180 * size_gb),
        "tokens_per_s": round(max(5.0, 120.0 / (1.0 + size_gb / 2)), 1),
    }
