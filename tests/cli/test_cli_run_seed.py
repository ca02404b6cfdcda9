"""`swarm run` flags of the original tool: --judge (score + rationale everywhere), --judge_model, --estimator_tag,
--planner_timeout_s, --write_default_agents; the original estimator-state JSON for --estimator_in."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from app.cli import main
from app.routing import load_agents

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("SWARM_CONFIG_FILE", raising=False)


def test_run_with_judge_stores_the_rationale_beside_the_score(tmp_path: Path) -> None:
    argv = ["run", "--dry_run", "--routing", "llm", "--runs_dir", str(tmp_path), "--run_id", "r1", "--judge",
            "--judge_model", "qwen2.5-coder:7b", "--estimator_tag", "trained", "--planner_timeout_s", "5",
            "--query", "Write a Python function that parses a CSV.", "--query", "Now solve: 17 * 6."]  # fmt: skip
    assert main(argv) == 0
    run = tmp_path / "r1"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["estimator_tag"] == "trained" == summary["quality_estimator_type"]
    last = summary["jobs"][-1]  # the original's summary.json was the last job's: its fields stay at the top
    assert summary["job_id"] == last["job_id"] and summary["plan"] == last["plan"]
    assert summary["task_to_model"] == last["task_to_model"] and "vram_used_gb" in summary
    assert json.loads((run / f"summary_{last['job_id']}.json").read_text())["job_id"] == last["job_id"]
    events = [json.loads(line) for line in (run / "telemetry.jsonl").read_text().splitlines()]
    verdicts = [e for e in events if e["event"] == "judge"]
    assert verdicts and all(e["judge_model"] == "qwen2.5-coder:7b" for e in verdicts)
    for job in summary["jobs"]:
        assert job["plan"] and {"id", "task_type", "description", "difficulty"} <= set(job["plan"][0])
        art = json.loads((run / "artifacts" / f"{job['job_id']}.json").read_text())
        evals = art["evaluations"]
        assert {e["subtask_id"] for e in evals} == {p["id"] for p in job["plan"]}
        for e in evals:
            assert (e["judge_score"] is None) == (e["judge_error"] is not None)
            if e["judge_score"] is not None:
                assert 0.0 <= e["judge_score"] <= 1.0 and isinstance(e["judge_rationale"], str)
        scored = [e["judge_score"] for e in evals if e["judge_score"] is not None]
        assert job["avg_judge_score"] == (pytest.approx(sum(scored) / len(scored)) if scored else None)
        assert job["evaluations"] == evals
        mine = {e["subtask_id"]: e for e in verdicts if e["job_id"] == job["job_id"]}
        assert {sid: (e["judge_score"], e["judge_rationale"]) for sid, e in mine.items()} == {
            e["subtask_id"]: (e["judge_score"], e["judge_rationale"]) for e in evals
        }
        assert art["assignments"] and art["orchestration"]["planner_model"]
    with sqlite3.connect(tmp_path / "cli.db") as con:
        rows = con.execute("select payload from telemetry_events where event_type = 'judge'").fetchall()
    assert len(rows) == len(verdicts) and all("judge_rationale" in json.loads(r[0]) for r in rows)
    assert (
        sum(1 for e in events if e["event"] == "job_start") == 2 == sum(1 for e in events if e["event"] == "job_costs")
    )


def test_write_default_agents_writes_and_exits(tmp_path: Path) -> None:
    out = tmp_path / "agents.json"
    runs = tmp_path / "runs"
    assert main(["run", "--dry_run", "--write_default_agents", str(out), "--runs_dir", str(runs)]) == 0
    assert load_agents(out) == load_agents(CONFIGS / "agents_heavy.json")
    assert not runs.exists()  # unlike the original, no run folder is created
    assert main(["run", "--write_default_agents", str(tmp_path)]) == 2  # a directory: one-line error


def test_original_estimator_state_is_accepted(tmp_path: Path) -> None:
    state = {  # the original QualityEstimator.save_json layout
        "ema_alpha": 0.2,
        "token_ema_alpha": 0.2,
        "quality": [{"agent": "gemma2:2b", "subtask_type": "math", "quality": 0.91}],
        "token_multiplier": {"gemma2:2b": 1.3},
    }
    src = tmp_path / "estimator_state.json"
    src.write_text(json.dumps(state))
    out = tmp_path / "after.json"
    argv = ["run", "--dry_run", "--freeze_estimator", "--estimator_in", str(src), "--estimator_out", str(out),
            "--runs_dir", str(tmp_path), "--query", "Now solve: 3 + 4."]  # fmt: skip
    assert main(argv) == 0
    saved = json.loads(out.read_text())
    assert saved["quality"][0]["agent"] == "gemma2:2b" and saved["quality"][0]["task_type"] == "math"
    assert saved["quality"][0]["quality"] == 0.91 and saved["token_multiplier"] == {"gemma2:2b": 1.3}
