"""Pulling through a backend: Ollama's progress stream is read line by line; failures name the model."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.backends.sim import SimBackend
from app.core.errors import BadBackendResponse
from app.execution.catalog import CatalogWatch
from app.execution.pull import PullStep, ensure_models, pull_model
from app.routing import load_agents

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
pytestmark = pytest.mark.anyio


def _sim() -> SimBackend:
    return SimBackend(load_agents(CONFIGS / "agents_heavy.json"), 24.0, installed=["gemma2:2b"])


async def test_pull_reports_progress_and_installs() -> None:
    sim = _sim()
    steps: list[PullStep] = []
    await pull_model(sim, "phi4:14b", steps.append)
    assert steps[0].status == "pulling manifest" and steps[-1].status == "success"
    sized = [s for s in steps if s.total]
    assert sized[-1].completed == sized[-1].total == 12_500_000_000
    assert [s.completed for s in sized] == sorted(s.completed or 0 for s in sized)
    assert "phi4:14b" in sim.installed_names


async def test_a_refused_pull_names_the_model() -> None:
    with pytest.raises(BadBackendResponse, match="pulling nope:1b failed: pull model manifest"):
        await pull_model(_sim(), "nope:1b")


async def test_ensure_pulls_only_what_is_missing() -> None:
    sim = _sim()
    agents = load_agents(CONFIGS / "agents_heavy.json")
    pulled, rec = await ensure_models(sim, agents, CatalogWatch())
    assert pulled == ["qwen2.5-coder:7b", "llama3.1:8b", "phi4:14b"]
    assert rec.missing == [] and [a.name for a in rec.routable] == [a.name for a in agents]
    assert (await ensure_models(sim, agents, CatalogWatch()))[0] == []
