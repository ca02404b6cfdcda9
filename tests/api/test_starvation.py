"""No starvation: CPU work on its own bounded executors, bench runs bounded (queued runs say so), MILP solves
time-limited with the gap reported, /route problem size bounded, /readyz reports a saturated executor."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.backends.sim import SimBackend
from app.core.errors import Saturated, SolveTimeLimit
from app.core.settings import Settings
from app.domain.models import Agent, RoutingProblem, Subtask
from app.execution.cpu import CpuPool
from app.main import create_app
from app.routing import Estimator, load_agents, milp, route_sync

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SUBS = [{"id": f"s{i}", "task_type": "code", "description": "x"} for i in range(10)]


def make(settings: Settings, **over: Any) -> TestClient:
    sim = SimBackend(load_agents(CONFIGS / "agents_heavy.json"), 8.0, seed=1)
    return TestClient(create_app(settings.model_copy(update=over), backend=sim))


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with make(settings, cpu_workers=1, cpu_max_queue=0, route_max_cells=30) as c:
        yield c


def test_route_problem_size_is_bounded(client: TestClient) -> None:
    resp = client.post("/route", json={"subtasks": SUBS})  # 10 subtasks x 4 agents = 40 > 30
    assert resp.status_code == 422
    err = resp.json()["error"]
    assert err["code"] == "problem_too_large" and err["details"][0]["field"] == "subtasks"
    assert client.post("/route", json={"subtasks": SUBS[:7]}).status_code == 200  # 28 cells
    jobs = client.post("/jobs", json={"subtasks": SUBS})
    assert jobs.status_code == 422 and jobs.json()["error"]["code"] == "problem_too_large"


def test_saturated_executor_is_reported_and_refuses(client: TestClient) -> None:
    runtime = client.app.state.runtime  # type: ignore[attr-defined]
    release = threading.Event()
    assert client.portal is not None
    blocker = client.portal.start_task_soon(runtime.cpu.run, release.wait, 30)
    deadline = time.monotonic() + 10
    while runtime.cpu.pending == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        cpu = ready.json()["components"]["cpu"]
        assert cpu["ok"] is False and cpu["saturated"] is True and cpu["busy"] == 1
        busy = client.post("/route", json={"subtasks": SUBS[:2], "routing": "lp"})
        assert busy.status_code == 503 and busy.json()["error"]["code"] == "saturated"
        # the database threads are not the CPU executor's: tenant endpoints still answer
        assert client.get("/jobs").status_code == 200 and client.get("/tenants/me").status_code == 200
    finally:
        release.set()
        blocker.result(timeout=10)
    assert client.get("/readyz").status_code == 200
    assert client.post("/route", json={"subtasks": SUBS[:2]}).status_code == 200


@pytest.mark.anyio
async def test_cpu_pool_bounds_its_queue() -> None:
    pool = CpuPool(workers=1, max_queue=1)
    release = threading.Event()
    import asyncio

    first = asyncio.ensure_future(pool.run(release.wait, 10))
    second = asyncio.ensure_future(pool.run(lambda: 42))
    await asyncio.sleep(0.05)
    assert pool.status() == {"workers": 1, "busy": 1, "queued": 1, "saturated": True}
    with pytest.raises(Saturated):
        await pool.run(lambda: 0)
    release.set()
    assert await first is True and await second == 42
    assert pool.status()["saturated"] is False
    pool.shutdown()


def test_bench_runs_are_bounded_and_queued_runs_say_so(settings: Settings) -> None:
    body = {"benchmarks": ["code_math_mix"], "limit": 30, "compare": "all", "dry_run": True}
    with make(settings, bench_max_running=1, bench_max_running_per_tenant=1) as c:
        ids = [c.post("/bench", json=body).json()["id"] for _ in range(3)]
        assert c.get(f"/bench/{ids[-1]}").json()["status"] == "queued"  # waits for the first two
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if all(c.get(f"/bench/{i}").json()["status"] == "succeeded" for i in ids):
                break
            time.sleep(0.05)
        assert all(c.get(f"/bench/{i}").json()["status"] == "succeeded" for i in ids)
        assert c.app.state.runtime.bench_slots.peak == 1  # type: ignore[attr-defined]
        threads = {t.name for t in threading.enumerate()}
        assert any(n.startswith("swarm-bench") for n in threads)  # the runs used their own threads


def _big_problem() -> RoutingProblem:
    rng = random.Random(1)
    agents = [
        Agent(
            name=f"m{i}",
            cost_per_token=rng.random(),
            max_ctx=8192,
            capabilities={"code": rng.random(), "math": rng.random()},
            vram_gb=rng.uniform(1, 9),
            load_time_ms=rng.uniform(100, 5000),
        )
        for i in range(60)
    ]
    subs = [
        Subtask(id=f"s{j}", task_type=rng.choice(["code", "math"]), estimated_tokens=rng.randint(50, 900))
        for j in range(120)
    ]
    return RoutingProblem(subtasks=subs, step_of={f"s{j}": j % 8 for j in range(120)}, agents=agents, gpu_vram_gb=16)


def test_milp_time_limit_reports_the_gap() -> None:
    """A tiny limit either returns the best plan found with its gap, or refuses with the limit named (which of the
    two depends on how fast HiGHS finds a first feasible plan on this machine); never an unbounded solve."""
    problem = _big_problem()
    plan = None
    try:
        milp.set_time_limit(0.05)
        plan = route_sync(problem, Estimator(), "lp")
    except SolveTimeLimit as exc:
        assert "0.05s solve time limit" in exc.message
    else:
        assert plan.solver is not None and plan.solver.status == "time_limit", plan.solver
        assert plan.solver.gap is not None and plan.solver.gap >= 0 and plan.solver.time_limit_s == 0.05
        assert len(plan.assignments) == 120
    finally:
        milp.set_time_limit(10.0)
    full = route_sync(problem, Estimator(), "lp")
    assert full.solver is not None and full.solver.status == "optimal" and full.solver.gap is None
    assert plan is None or full.objective >= plan.objective - 1e-6
