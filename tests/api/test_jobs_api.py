"""HTTP API on the simulated GPU: /jobs (wait, 202 + poll, SSE, cancel), /route, tenants, export, health."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.backends.sim import SimBackend
from app.core.settings import Settings
from app.domain.models import RoutingProblem, Subtask
from app.main import create_app
from app.routing import Estimator, load_agents, route_sync

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
CHAIN = [
    {"id": "a", "task_type": "extraction", "description": "Extract the year from: founded in 1998."},
    {"id": "b", "task_type": "math", "description": "Add 10 to the year.", "deps": ["a"]},
    {"id": "c", "task_type": "code", "description": "Write a function that returns it.", "deps": ["b"]},
]


def make_client(settings: Settings, **over: object) -> TestClient:
    agents = load_agents(CONFIGS / "agents_heavy.json")
    sim = SimBackend(agents, settings.gpu_vram_gb, seed=2, time_scale=float(over.pop("time_scale", 0.0)))  # type: ignore[arg-type]
    return TestClient(create_app(settings.model_copy(update=over), backend=sim))


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with make_client(settings) as c:
        yield c


def test_health_and_docs(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["components"]["database"]["ok"] is True
    assert client.get("/docs").status_code == 200
    assert "/jobs" in client.get("/openapi.json").json()["paths"]


def test_job_wait_returns_finished_job(client: TestClient) -> None:
    resp = client.post("/jobs", params={"wait": "true"}, json={"subtasks": CHAIN, "gpu_vram_gb": 8})
    assert resp.status_code == 200, resp.text
    job = resp.json()
    assert job["status"] == "succeeded" and job["final_answer"]
    assert [s["status"] for s in job["subtasks"]] == ["done"] * 3
    assert len(job["plan"]) == 3
    for step in job["plan"]:
        assert step["solver_status"] == "optimal"
        resident = step["resident"][0]
        vram = {"gemma2:2b": 2.0, "qwen2.5-coder:7b": 6.5, "llama3.1:8b": 8.0, "phi4:14b": 12.5}
        assert sum(vram[m] for m in resident) <= 8.0
    assert job["summary"]["vram_peak_gb"] <= 8.0


def test_job_202_then_poll_and_list(client: TestClient) -> None:
    resp = client.post("/jobs", json={"query": "Write a Python function that reverses a string."})
    assert resp.status_code == 202
    job_id = resp.json()["id"]
    for _ in range(100):
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running"):
            break
        time.sleep(0.05)
    assert job["status"] == "succeeded"
    assert job["plan_source"] in ("decomposer", "heuristic")
    listing = client.get("/jobs", params={"status": "succeeded", "limit": 5}).json()
    assert listing["total"] >= 1 and listing["items"][0]["id"] == job_id
    assert client.get("/jobs", params={"status": "bogus"}).status_code == 422


def test_sse_stream_ends_with_final_job(client: TestClient) -> None:
    job_id = client.post("/jobs", json={"subtasks": CHAIN}).json()["id"]
    events: list[tuple[str, dict[str, object]]] = []
    with client.stream("GET", f"/jobs/{job_id}/events") as resp:
        assert resp.headers["content-type"].startswith("text/event-stream")
        name = None
        for line in resp.iter_lines():
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: ") and name:
                events.append((name, json.loads(line[6:])))
    names = [n for n, _ in events]
    assert names[-1] == "end" and events[-1][1]["status"] == "succeeded"
    assert names.count("plan_step") == 3 and names.count("subtask") == 3 and "job" in names
    # the routing decision is announced before the step's subtasks run; the step record follows them
    assert names.index("orchestration") < names.index("subtask") < names.index("plan_step")


def test_cancel_running_job(settings: Settings) -> None:
    with make_client(settings, time_scale=1.0) as client:  # realistic load times: the job takes seconds
        job_id = client.post("/jobs", json={"subtasks": CHAIN}).json()["id"]
        time.sleep(0.3)
        resp = client.delete(f"/jobs/{job_id}")
        assert resp.status_code == 200 and resp.json()["status"] == "cancelled"
        assert client.delete(f"/jobs/{job_id}").status_code == 409


def test_route_equals_library_and_respects_g(client: TestClient) -> None:
    body = {"subtasks": CHAIN, "gpu_vram_gb": 8, "loaded_models": ["gemma2:2b"], "routing": "lp"}
    got = client.post("/route", json=body).json()
    agents = load_agents(CONFIGS / "agents_heavy.json")
    problem = RoutingProblem(
        subtasks=[Subtask(**s) for s in CHAIN],  # type: ignore[arg-type]
        step_of={"a": 0, "b": 1, "c": 2},
        agents=agents,
        gpu_vram_gb=8,
        loaded=["gemma2:2b"],
    )
    want = route_sync(problem, Estimator(), "lp")
    assert [(a["subtask_id"], a["model"], a["step"]) for a in got["assignments"]] == [
        (a.subtask_id, a.model, a.step) for a in want.assignments
    ]
    assert got["objective"] == pytest.approx(want.objective)
    assert got["vram_peak_gb"] <= 8.0
    assert len(got["model_task_estimates"]) == 4 * 3
    relaxed = client.post("/route", json={**body, "routing": "lp_relaxed"}).json()
    assert relaxed["routing"] == "lp_relaxed"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"subtasks": []}, "subtasks"),
        ({"subtasks": [{"id": "a", "task_type": "poetry"}]}, "subtasks.0.task_type"),
        ({"subtasks": [{"id": "a", "task_type": "code", "estimated_tokens": -5}]}, "subtasks.0.estimated_tokens"),
        ({"subtasks": [{"id": "a", "task_type": "code"}], "gpu_vram_gb": -1}, "gpu_vram_gb"),
        ({"subtasks": [{"id": "a", "task_type": "code"}], "routing": "magic"}, "routing"),
        ({"subtasks": [{"id": "a", "task_type": "code"}], "surprise": 1}, "surprise"),
    ],
)
def test_route_schema_errors_name_the_field(client: TestClient, body: dict[str, object], field: str) -> None:
    resp = client.post("/route", json=body)
    assert resp.status_code == 422
    err = resp.json()["error"]
    assert err["code"] == "invalid_input" and any(d["field"] == field for d in err["details"])


def test_semantic_errors(client: TestClient) -> None:
    cyc = [{"id": "a", "task_type": "code", "deps": ["b"]}, {"id": "b", "task_type": "code", "deps": ["a"]}]
    resp = client.post("/route", json={"subtasks": cyc})
    assert resp.status_code == 422 and "cycle" in resp.json()["error"]["message"]
    resp = client.post(
        "/jobs", json={"subtasks": [{"id": "a", "task_type": "code", "description": "x", "deps": ["zz"]}]}
    )
    assert resp.status_code == 422 and "unknown subtask 'zz'" in resp.json()["error"]["message"]
    resp = client.post("/route", json={"subtasks": [{"id": "a", "task_type": "code"}], "gpu_vram_gb": 1})
    assert resp.status_code == 422 and "gemma2:2b" in resp.json()["error"]["message"]
    resp = client.post("/jobs", json={"query": "x", "subtasks": [{"id": "a", "task_type": "code"}]})
    assert resp.status_code == 422 and "exactly one" in resp.json()["error"]["message"]
    resp = client.post("/jobs", json={"subtasks": [{"id": "a", "task_type": "code"}]})
    assert resp.status_code == 422 and "subtasks.0.description" in resp.json()["error"]["message"]
    assert client.get("/jobs").json()["total"] == 0  # nothing stored for rejected jobs


def test_oversized_body_is_413(settings: Settings) -> None:
    with make_client(settings, max_body_bytes=1000) as client:
        resp = client.post("/jobs", json={"query": "x" * 5000})
        assert resp.status_code == 413 and "exceeds 1000 bytes" in resp.json()["error"]["message"]
        # chunked (no Content-Length): counted as it arrives
        chunks = (b"x" * 100 for _ in range(50))
        resp = client.post("/route", content=chunks, headers={"content-type": "application/json"})
        assert resp.status_code == 413
        small = json.dumps({"subtasks": [{"id": "a", "task_type": "code"}]}).encode()
        parts = (small[i : i + 10] for i in range(0, len(small), 10))
        assert client.post("/route", content=parts, headers={"content-type": "application/json"}).status_code == 200
