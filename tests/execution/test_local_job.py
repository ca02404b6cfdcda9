"""A real two-model job on the embedded llama.cpp backend under a budget that holds one model at a time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.domain.models import Agent, Subtask
from app.execution.orchestrator import Orchestrator
from app.execution.results import JobSpec
from app.execution.state import GpuState
from app.execution.telemetry import Recorder
from app.routing import Estimator, load_agents

pytest.importorskip("llama_cpp", reason="extra 'local' not installed: pip install .[local]")
CONFIGS = Path(__file__).resolve().parents[2] / "configs"
pytestmark = [pytest.mark.slow, pytest.mark.anyio]


def specialised() -> list[Agent]:
    """The measured local catalog, with priors that make each model win one task type."""
    base = {a.name: a for a in load_agents(CONFIGS / "agents_local.json")}
    smol = base["smollm2:135m"].model_copy(update={"capabilities": {"extraction": 0.9, "creative": 0.1}})
    gemma = base["gemma3:270m"].model_copy(update={"capabilities": {"extraction": 0.1, "creative": 0.9}})
    return [Agent.model_validate(smol.model_dump()), Agent.model_validate(gemma.model_dump())]


async def test_two_model_job_swaps_for_real(tmp_path: Path) -> None:
    from app.backends.local import LocalBackend

    agents = specialised()
    budget = 0.45  # holds either model (0.175 / 0.355 GB) but not both
    backend = LocalBackend(agents, budget, data_dir=tmp_path / "models", n_ctx=1024)
    gpu = GpuState(backend, budget)
    jsonl = tmp_path / "telemetry.jsonl"
    orch = Orchestrator(gpu, Estimator(), Recorder(None, "default", jsonl), max_concurrency=1)
    subtasks = [
        Subtask(id="facts", task_type="extraction", description="Name one planet.", estimated_tokens=16),
        Subtask(
            id="poem", task_type="creative", description="Write one line about it.", estimated_tokens=16, deps=["facts"]
        ),
    ]
    try:
        result = await orch.run(JobSpec(job_id="local", agents=agents, subtasks=subtasks, synthesize=False))
    finally:
        await backend.aclose()
    assert result.status == "succeeded", result.error
    assert result.summary["task_to_model"] == {"facts": "smollm2:135m", "poem": "gemma3:270m"}
    steps = [json.loads(line) for line in jsonl.read_text().splitlines() if '"plan_step"' in line]
    assert steps[0]["models_swapped_in"] == ["smollm2:135m"]
    second = steps[1]
    assert second["evictions_done"] == ["smollm2:135m"]  # the plan's eviction, carried out on the real backend
    assert second["models_swapped_in"] == ["gemma3:270m"]
    assert second["resident_after"] == ["gemma3:270m"]
    assert second["measured_switch_ms"] > 50  # a real llama.cpp load, timed
    assert result.summary["vram_peak_gb"] <= budget
    assert all(r.output for r in result.subtasks.values())
