"""A benchmark run on the service's GPU shares it: it never unloads a model another caller is using (a private GPU
is reset to the warm set before each mode)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from app.backends.sim import SimBackend
from app.bench.runner import BenchConfig, run_bench
from app.execution.calls import catalog_specs
from app.execution.sched_types import CallRequest
from app.execution.state import GpuState
from app.routing import Estimator, load_agents

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def test_a_run_on_the_shared_gpu_leaves_other_callers_models_alone(tmp_path: Path) -> None:
    agents = load_agents(CONFIGS / "agents_heavy.json")

    async def scenario() -> list[str]:
        sim = SimBackend(agents, 24.0, seed=1)
        gpu = GpuState(sim, 24.0)
        other = await gpu.scheduler.acquire(CallRequest("other", {"llama3.1:8b": 1.0}, catalog_specs(agents)))
        await sim.load("llama3.1:8b", "10m")  # the other tenant's call is running on it
        cfg = BenchConfig(
            benchmarks=["workflowbench"], compare="lp", limit=2, seed=1, gpu_vram_gb=24.0, dry_run=True,
            output_dir=str(tmp_path / "out"),
        )  # fmt: skip
        await run_bench(cfg, backend=sim, agents=agents, estimator=Estimator(), gpu=gpu)
        other.release()
        unloads = [e.model for e in sim.events if e.kind == "unload"]
        return unloads

    unloads = asyncio.run(scenario())
    assert "llama3.1:8b" not in unloads
