"""Agent registry: presets load; every error names the file, the agent and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.core.errors import AgentFileError
from app.routing import load_agents

GOOD: dict[str, Any] = {
    "name": "m1",
    "cost_per_token": 0.5,
    "max_ctx": 4096,
    "capabilities": [0.5, 0.6, 0.7, 0.4, 0.5, 0.5],
    "vram_gb": 2.0,
    "load_time_ms": 500,
}


def _write(tmp_path: Path, payload: Any) -> Path:
    path = tmp_path / "agents.json"
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload))
    return path


def test_presets_match_the_seed(heavy: list, fast: list) -> None:  # type: ignore[type-arg]
    assert [a.name for a in heavy] == ["gemma2:2b", "qwen2.5-coder:7b", "llama3.1:8b", "phi4:14b"]
    phi4 = heavy[3]
    assert (phi4.vram_gb, phi4.load_time_ms, phi4.cost_per_token, phi4.capabilities["math"]) == (12.5, 2400, 2.0, 0.9)
    assert [a.name for a in fast] == ["tinyllama:latest", "gemma2:2b", "phi3:mini"]
    assert fast[0].max_ctx == 4096 and fast[2].capabilities["reasoning"] == 0.65


def test_list_and_dict_capabilities(tmp_path: Path) -> None:
    other = {**GOOD, "name": "m2", "capabilities": {"code": 0.9}}
    agents = load_agents(_write(tmp_path, {"agents": [GOOD, other]}))
    assert agents[0].capabilities["math"] == 0.7 and agents[0].capabilities["creative"] == 0.4
    assert agents[1].capabilities["code"] == 0.9 and agents[1].capabilities["math"] == 0.5
    assert len(load_agents(_write(tmp_path, [GOOD]))) == 1


@pytest.mark.parametrize(
    ("agents", "needles"),
    [
        ([{**GOOD, "capabilities": {"poetry": 0.5}}], ["'m1'", "capabilities.poetry", "unknown task type"]),
        ([{**GOOD, "capabilities": {"code": 1.5}}], ["'m1'", "capabilities.code", "outside [0, 1]"]),
        ([{**GOOD, "capabilities": [0.5, 0.5, -0.1, 0.5, 0.5, 0.5]}], ["'m1'", "capabilities.math"]),
        ([{**GOOD, "capabilities": [0.5, 0.5]}], ["'m1'", "capabilities", "6 values"]),
        ([GOOD, GOOD], ["'m1'", "index 1", "name", "duplicate"]),
        ([{**GOOD, "vram_gb": 0}], ["'m1'", "vram_gb", "> 0"]),
        ([{**GOOD, "vram_gb": -3}], ["'m1'", "vram_gb"]),
        ([{k: v for k, v in GOOD.items() if k != "name"}], ["index 0", "name"]),
        ([{**GOOD, "max_ctx": "big"}], ["'m1'", "max_ctx"]),
        ([], ["empty"]),
    ],
)
def test_errors_name_file_agent_and_field(tmp_path: Path, agents: list[Any], needles: list[str]) -> None:
    path = _write(tmp_path, {"agents": agents})
    with pytest.raises(AgentFileError) as info:
        load_agents(path)
    for needle in [str(path), *needles]:
        assert needle in info.value.message


def test_invalid_json_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AgentFileError, match="invalid JSON at line 1"):
        load_agents(_write(tmp_path, '{"agents": [}'))
    with pytest.raises(AgentFileError, match="not found"):
        load_agents(tmp_path / "nope.json")
