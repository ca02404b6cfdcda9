"""Progress a user sees: /bench advances job by job (and says which phase it is in); `swarm experiment` ends with
readable tables, not Python reprs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.cli import main
from app.core.settings import Settings
from app.main import create_app


@pytest.fixture
def paced(settings: Settings) -> Iterator[TestClient]:
    """The service with a simulator that takes (scaled) model time, so a dry-run bench lasts long enough to poll."""
    app = create_app(settings.model_copy(update={"sim_time_scale": 0.02}))
    with TestClient(app) as c:
        yield c


def test_bench_progress_advances_per_job(paced: TestClient) -> None:
    body = {"benchmarks": ["workflowbench"], "limit": 6, "seed": 1, "compare": "both", "dry_run": True}
    resp = paced.post("/bench", json=body)
    assert resp.status_code == 202, resp.text
    run_id = resp.json()["id"]
    seen: list[dict[str, object]] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        b = paced.get(f"/bench/{run_id}").json()
        seen.append(b)
        if b["status"] in ("succeeded", "failed"):
            break
        time.sleep(0.01)
    final = seen[-1]
    assert final["status"] == "succeeded", final["error"]
    assert final["progress"] == 1.0
    running = [b for b in seen if b["status"] == "running"]
    values = [float(str(b["progress"])) for b in running]
    assert values == sorted(values), "progress never goes back"
    assert all(v < 1.0 for v in values), "1.0 only once the run has succeeded"
    intermediate = {v for v in values if 0.0 < v < 1.0}
    assert len(intermediate) >= 3, values  # 12 jobs: several distinct steps, not 0 then 1
    done = [b["jobs_done"] for b in running]
    assert {b["jobs_total"] for b in running} == {12}
    assert done == sorted(done) and len(set(done)) >= 3
    phases = {b["phase"] for b in running}
    assert "jobs" in phases and phases <= {"jobs", "report"}
    assert final["jobs_done"] is None and final["phase"] is None


def test_experiment_prints_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["experiment", "--dry_run", "--suite", "workflow_sweep", "--lambda_switches", "0,1", "--gpu_vrams", "8"]
    argv += ["--limit", "2", "--compare", "lp", "--runs_dir", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "experiment workflow_sweep: 2 runs" in out
    assert "mean over the runs" in out
    lines = [line for line in out.splitlines() if "workflowbench" in line and " lp " in line]
    assert len(lines) == 3, out  # two runs (λ_switch 0 and 1), one mean row
    assert "{" not in out and "'" not in out  # no dict reprs


def test_bench_prints_a_comparison_line_not_a_dict(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--dry_run", "--benchmark", "workflowbench", "--limit", "3", "--compare", "both"]
    assert main([*argv, "--seed", "1", "--output_dir", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "lp vs llm: jobs won/lost/tied" in out
    assert "{" not in out and "'" not in out
