"""`swarm run --dry_run`: three queries carry the loaded set; telemetry shows loads only when the sim loaded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli import main


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.delenv("SWARM_CONFIG_FILE", raising=False)


def test_run_dry_run_three_queries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = [
        "run",
        "--dry_run",
        "--routing",
        "lp",
        "--gpu_vram_gb",
        "8",
        "--runs_dir",
        str(tmp_path),
        "--run_id",
        "r1",
        "--query",
        "Write a Python function that parses a CSV.",
        "--query",
        "Now solve: integrate x^2 from 0 to 1.",
        "--query",
        "Write a Python function that sorts a list.",
    ]
    assert main(argv) == 0
    run = tmp_path / "r1"
    summary = json.loads((run / "summary.json").read_text())
    jobs = summary["jobs"]
    assert [j["status"] for j in jobs] == ["succeeded"] * 3
    events = [json.loads(line) for line in (run / "telemetry.jsonl").read_text().splitlines()]
    steps = [e for e in events if e["event"] == "plan_step"]
    assert steps, "plan_step events are written"
    for step in steps:
        # a model counts as swapped in only if it was not resident before the step and is resident after it
        for model in step["models_swapped_in"]:
            assert model not in step["resident_before"] and model in step["resident_after"]
        assert step["vram_peak_gb"] <= 8.0
    # loaded models carry across jobs: each job's first step starts from the previous job's final state
    first_steps = [next(e for e in steps if e["job_id"] == j["job_id"]) for j in jobs]
    last_steps = [[e for e in steps if e["job_id"] == j["job_id"]][-1] for j in jobs]
    decomposer = "gemma2:2b"  # the smallest agent decomposes each query, and it occupies VRAM too
    for prev, nxt in zip(last_steps, first_steps[1:], strict=False):
        assert nxt["resident_before"], "state is carried across jobs, never reset"
        assert set(nxt["resident_before"]) <= set(prev["resident_after"]) | {decomposer}
    artifact = json.loads((run / "artifacts" / f"{jobs[0]['job_id']}.json").read_text())
    assert artifact["model_task_estimates"] and {"model", "quality", "utility"} <= set(
        artifact["model_task_estimates"][0]
    )


def test_run_rejects_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--dry_run", "--runs_dir", str(tmp_path)]) == 2
    assert "give at least one --query" in capsys.readouterr().err
    assert main(["run", "--dry_run", "--queries_file", str(tmp_path / "none.txt")]) == 2
    assert "--queries_file: file not found" in capsys.readouterr().err
    assert main(["run", "--dry_run", "--gpu_vram_gb", "-3", "--query", "x"]) == 2
    assert "--gpu_vram_gb: Input should be greater than 0" in capsys.readouterr().err


def test_db_upgrade_export_import(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db_file = tmp_path / "fresh" / "x.db"
    assert main(["db", "upgrade", "--database_url", f"sqlite:///{db_file}"]) == 0
    assert db_file.exists()
    assert main(["run", "--dry_run", "--runs_dir", str(tmp_path), "--query", "What is 2+2?"]) == 0
    out = tmp_path / "events.jsonl"
    assert main(["export", "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines and {json.loads(line)["event_type"] for line in lines} >= {"plan_step", "subtask", "job"}
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert main(["import", str(out), "--database_url", other]) == 0
    again = tmp_path / "again.jsonl"
    assert main(["export", "--out", str(again), "--database_url", other]) == 0
    strip = lambda text: [json.loads(line) | {"id": None} for line in text.splitlines()]  # noqa: E731
    assert strip(again.read_text()) == strip(out.read_text())
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"ts": 1, "event_type": "x", "payload": {}}\nnope\n')
    assert main(["import", str(bad), "--database_url", other]) == 2
    assert "line 2" in capsys.readouterr().err
