"""A job stops when its tenant's budget is spent: the calls not started are never made, the ones in flight are cut
and charged once, nothing runs (or is charged) after the job settles; helper calls are charged as they finish and
stop the job too; a job cancelled before (or right as) it starts ends `cancelled` with its reservation returned."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.backends.sim import SimBackend
from app.core.settings import Settings
from app.execution.budget import check_budget
from app.execution.jobs import make_spec
from app.execution.manager import JobManager
from app.execution.runtime import Runtime
from app.main import create_app
from app.routing import load_agents

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ADMIN = {"Authorization": "Bearer admin-secret"}
WIDE = [
    {"id": f"w{i}", "task_type": "code", "description": f"independent step {i}", "estimated_tokens": 100}
    for i in range(200)
]


def make(settings: Settings, time_scale: float = 0.0) -> TestClient:
    sim = SimBackend(load_agents(CONFIGS / "agents_heavy.json"), 8.0, seed=2, time_scale=time_scale)
    return TestClient(create_app(settings, backend=sim, admin_key="admin-secret"))


def tenant(client: TestClient, name: str, **extra: Any) -> dict[str, str]:
    resp = client.post("/admin/tenants", headers=ADMIN, json={"name": name, **extra})
    assert resp.status_code == 201, resp.text
    return {"Authorization": f"Bearer {resp.json()['api_key']}"}


def usage(client: TestClient, key: dict[str, str]) -> dict[str, int]:
    return client.get("/tenants/me", headers=key).json()["usage"]  # type: ignore[no-any-return]


def calls(job: dict[str, Any]) -> list[int]:
    return [(s["prompt_tokens"] or 0) + (s["eval_tokens"] or 0) for s in job["subtasks"]]


def test_wide_job_stops_its_parallel_calls_when_the_budget_is_spent(settings: Settings) -> None:
    with make(settings) as c:
        key = tenant(c, "wide", token_budget=2000)
        job = c.post("/jobs", params={"wait": "true"}, json={"subtasks": WIDE}, headers=key).json()
        assert job["status"] == "failed" and "token budget exhausted" in job["error"], job["error"]
        statuses = [s["status"] for s in job["subtasks"]]
        assert statuses.count("done") < 60, statuses.count("done")  # the rest never ran
        assert statuses.count("pending") > 100
        time.sleep(0.5)  # nothing of the job runs on after it settled
        later = c.get(f"/jobs/{job['id']}", headers=key).json()
        assert [s["status"] for s in later["subtasks"]] == statuses
        now = usage(c, key)
        assert now["tokens_reserved"] == 0
        assert now["tokens_used"] == sum(calls(later)) == later["total_tokens"]  # each call charged once
        concurrency = settings.max_concurrency
        assert now["tokens_used"] - 2000 <= concurrency * max(calls(later))  # overshoot: the calls in flight
        time.sleep(0.3)
        assert usage(c, key)["tokens_used"] == now["tokens_used"]


def test_helper_calls_are_charged_as_they_finish_and_stop_the_job(settings: Settings) -> None:
    """A query job whose decomposer call alone spends the budget: charged then, and the job stops before any
    subtask runs (the decomposer's fallback does not swallow the stop)."""
    with make(settings) as c:
        key = tenant(c, "tiny", token_budget=5)
        job = c.post("/jobs", params={"wait": "true"}, json={"query": "Plan a trip and price it."}, headers=key)
        body = job.json()
        assert body["status"] == "failed" and "token budget exhausted" in body["error"], body
        assert body["subtasks"] == []
        events = [e for e in _events(c, key, body["id"]) if e["event"] == "helper_call"]
        assert len(events) == 1 and events[0]["tokens"] > 0
        now = usage(c, key)
        assert now["tokens_used"] == events[0]["tokens"] == body["summary"]["helper_tokens"]
        assert now["tokens_reserved"] == 0


def _events(c: TestClient, key: dict[str, str], job_id: str) -> list[dict[str, Any]]:
    out = []
    with c.stream("GET", f"/jobs/{job_id}/events", headers=key) as resp:
        name = None
        for line in resp.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: ") and name:
                out.append({"event": name, **json.loads(line.removeprefix("data: "))})
    return out


async def _start_and_cancel(runtime: Runtime, jobs: JobManager, yields: int) -> str:
    """Submit a job (reserving 500 tokens) and cancel it after `yields` turns of the event loop (0: before its
    runner ever ran)."""
    default = runtime.repo.ensure_default_tenant()
    default.token_budget = 10**6
    spec = make_spec(runtime, subtasks=None, query="Prove it, then code it.")
    check_budget(runtime, default, reserve=500)
    await jobs.start(default.id, runtime.pool.default, spec, tenant=default, reserved=500)
    for _ in range(yields):
        await asyncio.sleep(0)
    assert await jobs.cancel(spec.job_id)
    return spec.job_id


def test_job_cancelled_right_after_submission_ends_cancelled(settings: Settings) -> None:
    with make(settings, time_scale=1.0) as c:
        app: Any = c.app
        runtime, jobs = app.state.runtime, app.state.jobs
        for yields in (0, 1, 2):  # never started; cancelled inside its first await (the job_start event); later
            job_id = c.portal.call(_start_and_cancel, runtime, jobs, yields)  # type: ignore[union-attr]
            job = c.get(f"/jobs/{job_id}").json()
            assert job["status"] == "cancelled", (yields, job["status"])
            assert runtime.usage.reserved == {}, yields
            assert job_id not in runtime.tasks
            assert c.delete(f"/jobs/{job_id}").status_code == 409
