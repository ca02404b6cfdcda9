"""HTTP /bench on the sim: 202 + poll to done with the report, CSV/JSONL downloads, 422 naming the field, 404."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.backends.sim import SimBackend
from app.core.settings import Settings
from app.main import create_app
from app.routing import load_agents

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture
def client(settings: Settings) -> Iterator[tuple[TestClient, SimBackend]]:
    sim = SimBackend(load_agents(CONFIGS / "agents_heavy.json"), settings.gpu_vram_gb, seed=1)
    app = create_app(settings, backend=sim)
    with TestClient(app) as c:
        yield c, sim


def _wait(c: TestClient, run_id: str, timeout_s: float = 60.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        body = c.get(f"/bench/{run_id}").json()
        assert 0.0 <= float(body["progress"]) <= 1.0
        if body["status"] in ("succeeded", "failed", "cancelled"):
            return dict(body)
        time.sleep(0.1)
    raise AssertionError("bench run did not finish")


def test_dry_run_bench_end_to_end(client: tuple[TestClient, SimBackend]) -> None:
    c, sim = client
    resp = c.post(
        "/bench",
        json={"benchmarks": ["code_math_mix", "workflowbench"], "limit": 4, "seed": 3, "compare": "both",
              "dry_run": True, "gpu_vram_gb": 8, "lambda_switch": 0.5},
    )  # fmt: skip
    assert resp.status_code == 202, resp.text
    run_id = resp.json()["id"]
    assert resp.json()["status"] == "queued"
    body = _wait(c, run_id)
    assert body["status"] == "succeeded", body["error"]
    assert body["progress"] == 1.0
    report = body["report"]
    assert isinstance(report, dict)
    assert report["mode_order"] == ["lp", "llm"] and list(report["modes"]) == ["lp", "llm"]
    assert report["n_examples"] == 8
    assert report["config"]["lambda_switch"] == 0.5
    cmp = report["comparison_lp_vs_llm"]
    assert cmp["jobs_compared"] + cmp["jobs_unscored"] == 8 and cmp["jobs_compared"] >= 4
    assert set(report["modes"]["lp"]["by_benchmark"]) == {"code_math_mix", "workflowbench"}
    assert sim.events == []  # dry_run never touched the service's GPU
    csv_resp = c.get(f"/bench/{run_id}/report.csv")
    assert csv_resp.status_code == 200 and csv_resp.text.startswith("routing_mode,benchmark,example_id,job_id")
    modes = [line.split(",")[0] for line in csv_resp.text.strip().splitlines()[1:]]
    assert sorted(modes) == ["llm"] * 8 + ["lp"] * 8  # one row per job and mode
    jsonl = c.get(f"/bench/{run_id}/outputs.jsonl")
    assert jsonl.status_code == 200
    assert len(jsonl.text.strip().splitlines()) == 2 * report["modes"]["lp"]["n_subtasks"]
    assert all('"mode"' in line for line in jsonl.text.strip().splitlines())


def test_bad_bodies_are_422_naming_the_field(client: tuple[TestClient, SimBackend]) -> None:
    c, _ = client
    cases = {
        "benchmarks": {"benchmarks": ["nope"]},
        "limit": {"benchmarks": ["code_math_mix"], "limit": 0},
        "compare": {"benchmarks": ["code_math_mix"], "compare": "fastest"},
        "surprise": {"benchmarks": ["code_math_mix"], "surprise": 1},
    }
    for field, body in cases.items():
        resp = c.post("/bench", json=body)
        assert resp.status_code == 422, (field, resp.text)
        assert field in resp.json()["error"]["message"], resp.json()
    assert c.post("/bench", json={"limit": 5}).status_code == 422


def test_unknown_run_is_404(client: tuple[TestClient, SimBackend]) -> None:
    c, _ = client
    for path in ("/bench/bench_nope", "/bench/bench_nope/report.csv", "/bench/bench_nope/outputs.jsonl"):
        resp = c.get(path)
        assert resp.status_code == 404 and "not found" in resp.json()["error"]["message"]


def test_foreign_run_is_404(settings: Settings) -> None:
    sim = SimBackend(load_agents(CONFIGS / "agents_heavy.json"), settings.gpu_vram_gb, seed=1)
    app = create_app(settings.model_copy(update={"admin_key": "admin-secret"}), backend=sim)
    admin = {"Authorization": "Bearer admin-secret"}
    with TestClient(app) as c:
        key = c.post("/admin/tenants", json={"name": "other"}, headers=admin).json()["api_key"]
        run_id = c.post("/bench", json={"benchmarks": ["code_math_mix"], "limit": 2, "dry_run": True},
                        headers=admin).json()["id"]  # fmt: skip
        other = {"Authorization": f"Bearer {key}"}
        assert c.get(f"/bench/{run_id}", headers=other).status_code == 404
        assert c.get(f"/bench/{run_id}/report.csv", headers=other).status_code == 404
        deadline = time.monotonic() + 30
        while c.get(f"/bench/{run_id}", headers=admin).json()["status"] != "succeeded":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert c.get(f"/bench/{run_id}/outputs.jsonl", headers=other).status_code == 404


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"benchmarks": ["agentic_bench"], "dry_run": True, "gpu_vram_gb": 0.5}, "gpu_vram_gb: 0.5 GB is smaller"),
        ({"benchmarks": ["workflowbench"], "dry_run": True, "warm": ["nope"]}, "warm: 'nope' is not in the agent"),
        ({"benchmarks": ["mbpp"], "dry_run": True}, "mbpp"),
    ],
)
def test_preflight_rejects_before_starting(
    client: tuple[TestClient, SimBackend], body: dict[str, object], needle: str
) -> None:
    c, _ = client
    resp = c.post("/bench", json=body)
    assert resp.status_code == 422 and needle in resp.json()["error"]["message"]


def test_pref_router_over_http_needs_a_router_file(client: tuple[TestClient, SimBackend]) -> None:
    c, _ = client
    resp = c.post("/bench", json={"benchmarks": ["code_math_mix"], "compare": "pref_router", "dry_run": True})
    assert resp.status_code == 422 and "router_model" in resp.text, resp.text
    ok = c.post("/bench", json={"benchmarks": ["code_math_mix"], "compare": "all", "limit": 1, "dry_run": True,
                               "estimator_tag": "trained"})  # fmt: skip
    assert ok.status_code == 202, ok.text
    body = _wait(c, ok.json()["id"])
    assert body["status"] == "succeeded" and "pref_router" not in body["report"]["modes"]  # `all` without a router
    assert {p["quality_estimator_type"] for p in body["report"]["pareto_data"]["all"]} == {"trained"}
