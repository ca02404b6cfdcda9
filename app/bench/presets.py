"""Agent-file presets for `swarm write-agents`: the shipped fast/heavy catalogs, or auto_fast from installed models."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from app.backends.base import Backend
from app.core.errors import SwarmError, ValidationFailed
from app.core.paths import config_file
from app.domain.models import TASK_TYPES
from app.routing.agents import parse_agents

PRESET_FILES = {"fast": "agents_fast.json", "heavy": "agents_heavy.json"}
PRESETS = (*PRESET_FILES, "auto_fast")
# Name hints that tilt a size-based prior towards a specialty.
_SPECIALTIES = {
    "code": ("code", "coder", "starcoder", "deepseek-coder", "codellama"),
    "math": ("math", "qwq", "deepseek-r1"),
}
_EMBEDDING = re.compile(r"embed|bge|minilm|nomic|e5-", re.I)


def preset_catalog(preset: str) -> dict[str, Any]:
    """The shipped catalog of a fixed preset, validated."""
    if preset not in PRESET_FILES:
        raise ValidationFailed(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    raw = json.loads(config_file(PRESET_FILES[preset]).read_text(encoding="utf-8"))
    parse_agents(raw, source=PRESET_FILES[preset])
    return dict(raw)


def size_prior(size_gb: float) -> float:
    """Capability prior from model size: ~0.35 at 0.3 GB, ~0.6 at 4 GB, ~0.8 at 16 GB (log-linear, clipped)."""
    return round(min(0.9, max(0.3, 0.45 + 0.11 * math.log2(max(size_gb, 0.05)))), 3)


def agent_from_tag(tag: dict[str, Any]) -> dict[str, Any]:
    """An agent entry from one /api/tags row: VRAM = weights + 20% (KV cache, runtime), load time and cost by size."""
    name = str(tag.get("name") or tag.get("model"))
    size_gb = max(float(tag.get("size") or 0) / 1e9, 0.05)
    base = size_prior(size_gb)
    caps = dict.fromkeys(TASK_TYPES, base)
    lowered = name.lower()
    for task, hints in _SPECIALTIES.items():
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


async def auto_fast_catalog(backend: Backend, k: int) -> dict[str, Any]:
    """The k smallest installed chat models (embedding models skipped), with size-based priors."""
    if k < 1:
        raise ValidationFailed("--k must be at least 1")
    tags = [t for t in await backend.installed() if not _EMBEDDING.search(str(t.get("name") or ""))]
    if not tags:
        raise ValidationFailed(f"backend {backend.name} lists no installed chat models (/api/tags is empty)")
    chosen = sorted(tags, key=lambda t: (float(t.get("size") or 0), str(t.get("name"))))[:k]
    catalog = {"agents": [{**agent_from_tag(t), "tools": await _calls_tools(backend, t)} for t in chosen]}
    parse_agents(catalog, source="auto_fast")
    return catalog


async def _calls_tools(backend: Backend, tag: dict[str, Any]) -> bool:
    """Ollama's "tools" capability: in /api/tags on current Ollama, else from /api/show (False if unknown)."""
    caps = tag.get("capabilities")
    if not isinstance(caps, list):
        try:
            caps = (await backend.show(str(tag.get("name") or tag.get("model")))).get("capabilities")
        except SwarmError:
            return False
    return isinstance(caps, list) and "tools" in caps


def write_catalog(catalog: dict[str, Any], out: str | Path) -> Path:
    """Write the catalog as JSON (an existing file is replaced); the folder is created when missing."""
    if not str(out).strip():
        raise ValidationFailed("--out: must not be empty")
    path = Path(out)
    if path.is_dir():
        raise ValidationFailed(f"--out: is a directory: {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(catalog, indent=2) + "\n", encoding="utf-8")
    return path
