"""Agent-file presets for `swarm write-agents`: the shipped fast/heavy catalogs, or auto_fast from installed models."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from app.backends.base import Backend
from app.core.errors import SwarmError, ValidationFailed
from app.core.paths import config_file
from app.routing.agents import parse_agents
from app.routing.derived import agent_from_tag

PRESET_FILES = {"fast": "agents_fast.json", "heavy": "agents_heavy.json"}
AUTO_PRESETS = ("auto", "auto_fast")  # read from the backend's installed models
PRESETS = (*PRESET_FILES, *AUTO_PRESETS)
_EMBEDDING = re.compile(r"embed|bge|minilm|nomic|e5-", re.I)


def is_embedding_model(name: str) -> bool:
    return _EMBEDDING.search(name) is not None


def preset_catalog(preset: str) -> dict[str, Any]:
    """The shipped catalog of a fixed preset, validated."""
    if preset not in PRESET_FILES:
        raise ValidationFailed(f"unknown preset {preset!r}; use one of {', '.join(PRESETS)}")
    raw = json.loads(config_file(PRESET_FILES[preset]).read_text(encoding="utf-8"))
    parse_agents(raw, source=PRESET_FILES[preset])
    return dict(raw)


async def auto_fast_catalog(backend: Backend, k: int | None) -> dict[str, Any]:
    """The k smallest installed chat models (all of them with k None; embedding models skipped), with size-based
    priors."""
    if k is not None and k < 1:
        raise ValidationFailed("--k must be at least 1")
    tags = [t for t in await backend.installed() if not is_embedding_model(str(t.get("name") or ""))]
    if not tags:
        raise ValidationFailed(f"backend {backend.name} lists no installed chat models (/api/tags is empty)")
    chosen = sorted(tags, key=lambda t: (float(t.get("size") or 0), str(t.get("name"))))[:k]  # [:None] = all
    catalog = {"agents": [{**agent_from_tag(t), "tools": await _calls_tools(backend, t)} for t in chosen]}
    parse_agents(catalog, source="installed models")
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
