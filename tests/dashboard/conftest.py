"""A sim-backed router served on a loopback port, with an admin key and one keyed tenant, for the dashboard tests."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from app.core.settings import Settings
from app.main import create_app
from tests.api.conftest import serve

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ADMIN_KEY = "admin-dashboard-secret"


@dataclass
class Service:
    url: str
    tenant_key: str
    other_key: str

    def client(self, key: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def service_settings(root: Path, time_scale: float) -> Settings:
    return Settings(
        backend="sim",
        database_url=f"sqlite:///{root / 'swarm.db'}",
        data_dir=root / "data",
        runs_dir=root / "runs",
        agents_file=CONFIGS / "agents_heavy.json",
        gpu_vram_gb=8.0,
        admin_key=ADMIN_KEY,
        sim_time_scale=time_scale,
    )


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The simulator paces loads and decoding (time scale 0.02) so a job runs long enough to be watched live."""
    root = tmp_path_factory.mktemp("dashboard")
    with serve(create_app(service_settings(root, 0.02))) as url:
        admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {ADMIN_KEY}"}, timeout=30)
        keys = [
            admin.post("/admin/tenants", json={"name": n, "token_budget": 100_000}).json()["api_key"]
            for n in ("alice", "bob")
        ]
        yield Service(url, keys[0], keys[1])


TWO_STEP_JOB = {
    "subtasks": [
        {"id": "extract", "task_type": "extraction", "description": "Extract the year: founded in 1998."},
        {"id": "add", "task_type": "math", "description": "Add 10 to it.", "deps": ["extract"]},
        {"id": "explain", "task_type": "summarize", "description": "Explain the result.", "deps": ["add"]},
    ],
    "routing": "lp",
}


def wait_job(client: httpx.Client, job_id: str, timeout_s: float = 60) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, object] = client.get(f"/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish in {timeout_s} s")
