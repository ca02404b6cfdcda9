"""Benchmarks on the service's GPU are the tenant's work: reserved at admission, every model call charged as it
finishes, and the run stops (failed, saying why) once the tenant's budget is spent."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from app.core.settings import Settings
from tests.api.test_job_budget_stop import make, tenant, usage

RUN = {"benchmarks": ["workflowbench"], "compare": "lp", "limit": 5, "seed": 1, "dry_run": False}


def finished(c: TestClient, key: dict[str, str], run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while (run := c.get(f"/bench/{run_id}", headers=key).json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, run
        time.sleep(0.05)
    return run  # type: ignore[no-any-return]


def test_real_bench_run_is_charged_its_calls(settings: Settings) -> None:
    with make(settings) as c:
        key = tenant(c, "bencher", token_budget=10**9)
        resp = c.post("/bench", json=RUN, headers=key)
        assert resp.status_code == 202, resp.text
        assert usage(c, key)["tokens_reserved"] > 0  # held from admission
        run = finished(c, key, resp.json()["id"])
        assert run["status"] == "succeeded", run["error"]
        telemetry = Path(settings.runs_dir) / "bench" / run["id"] / "runs" / "lp" / "telemetry.jsonl"
        events = [json.loads(line) for line in telemetry.read_text().splitlines() if line.strip()]
        calls = [e for e in events if e["event"] == "subtask"]
        generated = sum(e["prompt_tokens"] + e["eval_tokens"] for e in calls)
        now = usage(c, key)
        assert generated > 0 and now["tokens_used"] == generated and now["tokens_reserved"] == 0


def test_real_bench_run_stops_when_the_budget_is_spent(settings: Settings) -> None:
    with make(settings) as c:
        key = tenant(c, "poor-bencher", token_budget=100)
        resp = c.post("/bench", json=RUN, headers=key)
        assert resp.status_code == 202, resp.text
        run = finished(c, key, resp.json()["id"])
        assert run["status"] == "failed" and "token budget exhausted" in run["error"], run
        now = usage(c, key)
        assert 100 <= now["tokens_used"] < 2000 and now["tokens_reserved"] == 0
        assert c.post("/bench", json=RUN, headers=key).status_code == 429
