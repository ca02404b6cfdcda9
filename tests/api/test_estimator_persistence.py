"""The service's estimator state lives in the database per catalog: learning survives a restart."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from app.backends.sim import SimBackend
from app.core.settings import Settings
from app.main import create_app
from app.routing import load_agents
from app.storage import db
from app.storage.repo import Repo

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
SUBTASKS = [{"id": "a", "task_type": "math", "description": "What is 6 * 7?"}]


def _client(settings: Settings) -> TestClient:
    sim = SimBackend(load_agents(CONFIGS / "agents_heavy.json"), settings.gpu_vram_gb, seed=4)
    return TestClient(create_app(settings, backend=sim))


def test_estimator_state_survives_a_restart(settings: Settings) -> None:
    with _client(settings) as client:
        me = client.get("/tenants/me").json()["estimator"]
        assert me["quality"] == [] and me["speed"] == {}
        job = client.post("/jobs?wait=true", json={"subtasks": SUBTASKS, "routing": "lp"})
        assert job.status_code == 200 and job.json()["status"] == "succeeded"
        model = job.json()["subtasks"][0]["model"]
        client.app.state.runtime.estimator.observe_score(model, "math", 0.0)  # type: ignore[attr-defined]
        before = client.get("/tenants/me").json()["estimator"]
        assert before["speed"][model]["loads"] == 1 and before["speed"][model]["decode_tps"] > 0
        assert [(r["model"], r["task_type"], r["n"]) for r in before["quality"]] == [(model, "math", 1)]
    # Saved at shutdown, per catalog:
    rows = Repo(db.make_engine(settings.database_url)).estimator_state(before["catalog"])
    assert rows is not None and rows["speed"][model]["loads"] == 1
    with _client(settings) as client:
        after = client.get("/tenants/me").json()["estimator"]
        assert after == before
