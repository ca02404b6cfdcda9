"""The simulator's tool calls: given `tools`, a deterministic call with schema-valid arguments, as Ollama answers."""

from __future__ import annotations

import random
from typing import Any

from app.backends.base import JSON
from app.backends.schema_sample import SchemaSampler


def _named(choice: Any) -> str | None:
    """The function a tool_choice forces (OpenAI's {"type": "function", "function": {"name"}} or {"name"})."""
    if not isinstance(choice, dict):
        return None
    fn = choice.get("function")
    name = fn.get("name") if isinstance(fn, dict) else choice.get("name")
    return name if isinstance(name, str) else None


def sim_tool_calls(request: JSON, rng: random.Random) -> list[JSON]:
    """One call of a tool offered in `request` — the forced one, else the first — unless tool_choice is "none" or
    the last message already is a tool's result (then the model answers in text)."""
    offered = [t.get("function") for t in request.get("tools") or [] if isinstance(t, dict)]
    tools: list[JSON] = [fn for fn in offered if isinstance(fn, dict) and isinstance(fn.get("name"), str)]
    choice = request.get("tool_choice")
    messages = [m for m in request.get("messages") or [] if isinstance(m, dict)]
    if not tools or choice == "none" or (messages and messages[-1].get("role") == "tool"):
        return []
    forced = _named(choice)
    fn = next((t for t in tools if t["name"] == forced), tools[0])
    params = fn.get("parameters")
    arguments = SchemaSampler(rng).sample(params) if isinstance(params, dict) and params else {}
    call_id = f"call_{rng.getrandbits(48):012x}"
    return [{"id": call_id, "function": {"index": 0, "name": fn["name"], "arguments": arguments or {}}}]
