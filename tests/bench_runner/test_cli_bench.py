"""`swarm bench --dry_run` end to end in-process: every output file, determinism, equal starting state per mode."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from app.cli import main

MODES = ["lp", "lp_relaxed", "llm", "greedy", "random"]
FILES = [
    "bench_config.json",
    "examples.jsonl",
    "outputs.jsonl",
    "report.json",
    "report.csv",
    "report_modes.csv",
    "report_timing.json",
    "report_timing.csv",
    "report_pareto.csv",
    "report_pareto.png",
]
DONE_WHEN = ["--benchmark", "workflowbench", "--benchmark", "code_math_mix", "--compare", "all"]


def _bench(tmp: Path, name: str, *extra: str) -> Path:
    out = tmp / name
    code = main(["bench", "--dry_run", *extra, "--output_dir", str(out)])
    assert code == 0
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("bench")
    mp = pytest.MonkeyPatch()
    mp.setenv("SWARM_DATABASE_URL", f"sqlite:///{tmp / 'swarm.db'}")
    mp.setenv("SWARM_RUNS_DIR", str(tmp / "runs"))
    try:
        a = _bench(tmp, "a", *DONE_WHEN, "--limit", "20", "--seed", "1")
        b = _bench(tmp, "b", *DONE_WHEN, "--limit", "20", "--seed", "1")
    finally:
        mp.undo()
    return a, b


def test_writes_every_file(runs: tuple[Path, Path]) -> None:
    out, _ = runs
    for name in FILES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for mode in MODES:
        assert (out / "runs" / mode / "telemetry.jsonl").stat().st_size > 0
        summary = json.loads((out / "runs" / mode / "summary.json").read_text())
        assert len(summary["jobs"]) == 40
    report = json.loads((out / "report.json").read_text())
    assert report["mode_order"] == MODES and set(report["modes"]) == set(MODES) and report["n_examples"] == 40
    for metrics in report["modes"].values():
        for key in ("n", "avg_score", "ci95", "score_std", "score_min", "score_max", "by_benchmark",
                    "avg_models_swapped_in", "estimated_switch_ms_mean", "avg_active_model_count", "peak_vram_gb",
                    "vram_violation_rate", "tokens_mean", "token_cost_mean", "score_per_token_cost",
                    "objective_per_step_mean", "fallback_rate", "oracle_gap_per_step_mean"):  # fmt: skip
            assert key in metrics, key
        timing = json.loads((out / "report_timing.json").read_text())["modes"][metrics["mode"]]["timing"]
        for key in ("measured_switch_ms_mean", "wall_ms_mean", "sum_subtask_latency_ms_mean"):
            assert key in timing
        assert set(metrics["by_benchmark"]) == {"workflowbench", "code_math_mix"}
        assert 0.0 <= metrics["avg_score"] <= 1.0 and metrics["ci95"] > 0
    cmp = report["comparison_lp_vs_llm"]
    assert cmp["jobs_won"] + cmp["jobs_lost"] + cmp["jobs_tied"] + cmp["jobs_unscored"] == 40
    assert cmp["jobs_unscored"] < 10  # only single code subtasks without --code_eval
    assert len(report["pareto_points"]) == 3 * 5 and report["pareto_points_frontier"]
    assert {b: len(p) for b, p in report["pareto_data"].items()} == {"workflowbench": 5, "code_math_mix": 5, "all": 5}
    rows = [json.loads(line) for line in (out / "outputs.jsonl").read_text().splitlines()]
    assert {r["mode"] for r in rows} == set(MODES)
    assert {"mode", "job", "subtask", "output", "expected", "score", "model", "judge_score"} <= set(rows[0])
    with (out / "report_modes.csv").open() as fh:
        assert [r["mode"] for r in csv.DictReader(fh)] == MODES
    with (out / "report.csv").open() as fh:
        per_job = list(csv.DictReader(fh))
    assert sorted({(r["routing_mode"], r["example_id"]) for r in per_job}) == sorted(
        {(m, r["job"]) for r in rows for m in MODES}
    )
    assert len(per_job) == 5 * 40
    with (out / "report_pareto.csv").open() as fh:
        assert len(list(csv.DictReader(fh))) == 15


def _without_clock(out: Path) -> tuple[dict[str, object], list[dict[str, str]]]:
    """report.json and report.csv without the original tool's wall-clock fields (listed in the report) and without
    the fields naming the output folder: what two same-seed runs must agree on exactly."""
    report = json.loads((out / "report.json").read_text())
    clock = report["wall_clock_fields"]
    assert clock["modes"] and clock["report_csv"]
    for metrics in report["modes"].values():
        for key in clock["modes"]:
            assert key in metrics
            metrics.pop(key)
        metrics.pop("run_dir")
    for key in clock["comparison_lp_vs_llm"]:
        report["comparison_lp_vs_llm"].pop(key)
    for key in ("bench_dir", "report_csv", "report_modes_csv", "report_pareto_csv", "outputs_jsonl", "artifacts_dir"):
        assert str(out) in report.pop(key)
    with (out / "report.csv").open() as fh:
        rows = [{k: v for k, v in r.items() if k not in clock["report_csv"]} for r in csv.DictReader(fh)]
    return report, rows


def test_same_seed_same_report(runs: tuple[Path, Path]) -> None:
    a, b = runs
    # everything but the wall-clock fields and the output folder's name is identical
    assert _without_clock(a) == _without_clock(b)
    assert (a / "report_modes.csv").read_bytes() == (b / "report_modes.csv").read_bytes()
    assert (a / "report_pareto.csv").read_bytes() == (b / "report_pareto.csv").read_bytes()
    ta = json.loads((a / "report_timing.json").read_text())
    assert ta["timing"]["elapsed_s"] > 0 and ta["modes"]["lp"]["timing"]
    assert (a / "outputs.jsonl").read_text() == (b / "outputs.jsonl").read_text()
    assert (a / "examples.jsonl").read_text() == (b / "examples.jsonl").read_text()


def test_other_seed_other_examples(runs: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_DATABASE_URL", f"sqlite:///{tmp_path / 'swarm.db'}")
    out = _bench(tmp_path, "c", "--benchmark", "code_math_mix", "--compare", "lp", "--limit", "5", "--seed", "2")
    assert (out / "examples.jsonl").read_text() != (runs[0] / "examples.jsonl").read_text()


def test_every_mode_starts_from_the_warm_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_DATABASE_URL", f"sqlite:///{tmp_path / 'swarm.db'}")
    out = _bench(tmp_path, "w", "--benchmark", "workflowbench", "--compare", "all", "--limit", "4", "--seed", "3",
                 "--warm", "gemma2:2b", "--block_size", "2")  # fmt: skip
    report = json.loads((out / "report.json").read_text())
    starts = report["mode_starts"]
    assert len(starts) == 2 * 5 and all(s["loaded"] == ["gemma2:2b"] for s in starts)
    # the mode order rotates between blocks
    first = {b: next(s["mode"] for s in starts if s["block"] == b) for b in (0, 1)}
    assert first[0] != first[1]
    for mode in MODES:
        jobs = json.loads((out / "runs" / mode / "summary.json").read_text())["jobs"]
        firsts = {jobs[0]["job_id"], jobs[2]["job_id"]}  # the first job of each block
        events = [json.loads(x) for x in (out / "runs" / mode / "telemetry.jsonl").read_text().splitlines()]
        seen = [e for e in events if e["event"] == "plan_step" and e["step"] == 0 and e["job_id"] in firsts]
        assert len(seen) == 2
        assert all(e["resident_before"] == ["gemma2:2b"] for e in seen), (mode, seen)
