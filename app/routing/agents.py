"""Agent registry: load and validate agent catalogs from JSON files."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from app.core.errors import AgentFileError
from app.domain.models import TASK_TYPES, Agent


def load_agents(path: str | Path) -> list[Agent]:
    """Read a catalog: a JSON list of agents or {"agents": [...]}; every error names file, agent and field."""
    p = Path(path)
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise AgentFileError(f"{p}: agents file not found") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise AgentFileError(f"{p}: cannot read agents file: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise AgentFileError(f"{p}: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    return parse_agents(raw, source=str(p))


def parse_agents(raw: Any, *, source: str = "<agents>") -> list[Agent]:
    """Validate an already-decoded catalog; `source` is used in error messages."""
    items = raw.get("agents") if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        raise AgentFileError(f"{source}: expected a list of agents or an object with an 'agents' list")
    if not items:
        raise AgentFileError(f"{source}: the agent list is empty")
    agents: list[Agent] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        agent = _parse_one(item, index, source)
        if agent.name in seen:
            raise AgentFileError(f"{source}: agent '{agent.name}' (index {index}), field 'name': duplicate name")
        seen.add(agent.name)
        agents.append(agent)
    return agents


def _parse_one(item: Any, index: int, source: str) -> Agent:
    label = f"index {index}"
    if not isinstance(item, dict):
        raise AgentFileError(f"{source}: agent {label}: expected an object, got {type(item).__name__}")
    if isinstance(item.get("name"), str):
        label = f"'{item['name']}' (index {index})"
    data = dict(item)
    data["capabilities"] = _capabilities(item.get("capabilities"), label, source)
    vram = data.get("vram_gb")
    if isinstance(vram, int | float) and vram <= 0:
        raise AgentFileError(f"{source}: agent {label}, field 'vram_gb': must be > 0, got {vram}")
    try:
        return Agent.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(part) for part in err["loc"]) or "?"
        raise AgentFileError(f"{source}: agent {label}, field '{field}': {err['msg']}") from exc


def _capabilities(caps: Any, label: str, source: str) -> dict[str, float]:
    """Accept {task_type: value} or a 6-list in TASK_TYPES order; check names and the [0, 1] range here."""
    if caps is None:
        return {}
    if isinstance(caps, list):
        if len(caps) != len(TASK_TYPES):
            raise AgentFileError(
                f"{source}: agent {label}, field 'capabilities': a list needs {len(TASK_TYPES)} values "
                f"({'/'.join(TASK_TYPES)}), got {len(caps)}"
            )
        caps = dict(zip(TASK_TYPES, caps, strict=True))
    if not isinstance(caps, dict):
        raise AgentFileError(f"{source}: agent {label}, field 'capabilities': expected an object or a list")
    out: dict[str, float] = {}
    for task, value in caps.items():
        where = f"{source}: agent {label}, field 'capabilities.{task}'"
        if task not in TASK_TYPES:
            raise AgentFileError(f"{where}: unknown task type (allowed: {', '.join(TASK_TYPES)})")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise AgentFileError(f"{where}: expected a number, got {value!r}")
        if not 0.0 <= float(value) <= 1.0:
            raise AgentFileError(f"{where}: {value} is outside [0, 1]")
        out[task] = float(value)
    return out
