"""Derived agent defaults for a model known only by its /api/tags entry (name and size on disk)."""

from __future__ import annotations

import math
from typing import Any

from app.domain.models import TASK_TYPES

# Name hints that tilt a size-based prior towards a specialty.
SPECIALTIES = {
    "code": ("code", "coder", "starcoder", "deepseek-coder", "codellama"),
    "math": ("math", "qwq", "deepseek-r1"),
}


def size_prior(size_gb: float) -> float:
    """Capability prior from model size: log-linear in the size, clipped to [0.3, 0.9]."""
    return round(min(0.9, max(0.3, 0.45 + 0.11 * math.log2(max(size_gb, 0.05)))), 3)


def agent_from_tag(tag: dict[str, Any]) -> dict[str, Any]:
    """An agent entry from one /api/tags row: VRAM = weights + 20% (KV cache, runtime), load time and cost by size."""
    name = str(tag.get("name") or tag.get("model"))
    size_gb = max(float(tag.get("size") or 0) / 1e9, 0.05)
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
