"""Several processes on one database: a second service leaves the first one's live jobs alone; only jobs whose
owner stopped stamping its heartbeat (or that have no owner) are swept to `interrupted`."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi.testclient import TestClient

from app.backends.sim import SimBackend
from app.core.settings import Settings
from app.main import create_app
from app.routing import load_agents
from app.storage.models import Job

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
CHAIN = [
    {"id": f"s{i}", "task_type": "code", "description": f"step {i}"} | ({"deps": [f"s{i - 1}"]} if i else {})
    for i in range(3)
]


def make(settings: Settings, time_scale: float) -> TestClient:
    sim = SimBackend(load_agents(CONFIGS / "agents_heavy.json"), 8.0, seed=3, time_scale=time_scale)
    over = {"owner_heartbeat_s": 0.2, "owner_stale_after": 3}
    return TestClient(create_app(settings.model_copy(update=over), backend=sim))


def test_second_process_leaves_live_jobs_alone(settings: Settings) -> None:
    with make(settings, time_scale=1.0) as first:
        job_id = first.post("/jobs", json={"subtasks": CHAIN}).json()["id"]
        repo = first.app.state.runtime.repo  # type: ignore[attr-defined]
        gone = Job(id="job-of-a-dead-process", tenant_id="default", status="running", owner_id="other:1:dead")
        gone.heartbeat_at = time.time() - 3600
        legacy = Job(id="job-without-owner", tenant_id="default", status="running")
        repo.create_job(gone)
        repo.create_job(legacy)
        with make(settings, time_scale=0.0) as second:  # same database, its own lifespan sweep
            assert second.get(f"/jobs/{job_id}").json()["status"] in ("queued", "running")
            assert second.get("/jobs/job-of-a-dead-process").json()["status"] == "interrupted"
            assert second.get("/jobs/job-without-owner").json()["status"] == "interrupted"
            time.sleep(1.0)  # several heartbeats of both processes: the live job is never swept
            assert second.get(f"/jobs/{job_id}").json()["status"] in ("queued", "running")
        deadline = time.monotonic() + 60
        while first.get(f"/jobs/{job_id}").json()["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert first.get(f"/jobs/{job_id}").json()["status"] == "succeeded"


def test_jobs_of_a_process_that_stops_heartbeating_are_swept(settings: Settings) -> None:
    with make(settings, time_scale=0.0) as live:
        repo = live.app.state.runtime.repo  # type: ignore[attr-defined]
        stalled = Job(id="job-stalled", tenant_id="default", status="running", owner_id="other:2:x")
        stalled.heartbeat_at = time.time()  # fresh now: not swept at start-up
        repo.create_job(stalled)
        assert live.get("/jobs/job-stalled").json()["status"] == "running"
        deadline = time.monotonic() + 10  # stale after 3 heartbeats of 0.2 s: the periodic sweep takes it
        while live.get("/jobs/job-stalled").json()["status"] == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        job = live.get("/jobs/job-stalled").json()
        assert job["status"] == "interrupted" and "stopped" in job["error"]
