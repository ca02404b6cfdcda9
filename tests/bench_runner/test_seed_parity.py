"""The original tool's users keep their scripts: its report consumers, run over a fresh report, still work.

`original_report_analysis` and `original_meta_analysis` copy the original analysis logic (data_analysis and the
reporting helpers as described field by field in the seed notes): plain dict access by the original names.
"""

from __future__ import annotations

import csv
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from app.cli import main

ORIGINAL_CSV = (
    "routing_mode", "benchmark", "example_id", "job_id", "metric", "score", "active_models", "active_roles",
    "active_role_agents", "models_swapped_in", "estimated_switch_cost_ms", "vram_used_gb", "vram_violation",
    "sum_token_cost", "gpu_name", "total_latency_ms", "total_prompt_tokens", "total_completion_tokens",
    "score_per_token_cost", "vram_utilization", "lp_objective_value", "chosen_utility", "total_cost_est",
    "utility_efficiency", "oracle_gap_pct",
)  # fmt: skip
COST_FIELDS = (
    "sum_token_cost", "estimated_switch_cost_ms", "models_swapped_in", "vram_used_gb", "active_roles",
    "active_role_agents", "n_distinct_models", "n_role_agents", "loaded_models_before",
)  # fmt: skip
MODES = {"lp", "lp_relaxed", "llm", "greedy", "random"}


def original_report_analysis(report: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], list[tuple[Any, ...]]]:
    summary = {}
    for mode in sorted(report["modes"]):
        m = report["modes"][mode]
        summary[mode] = {
            "n": m["n_scored"], "mean_score": float(m["avg_score"]), "std": m.get("score_std"),
            "swapped": float(m["avg_models_swapped_in"]), "switch_ms": float(m["avg_estimated_switch_cost_ms"]),
            "active": float(m["avg_active_model_count"]), "vram": float(m["avg_vram_used_gb"]),
            "violations": int(m["vram_violation_count"]), "violation_rate": float(m["vram_violation_rate"]),
            "utility": m.get("avg_chosen_utility"), "efficiency": m.get("avg_utility_efficiency"),
            "cost": m.get("avg_total_cost_est"), "objective": m.get("avg_lp_objective_value"),
            "gap": m.get("avg_oracle_gap_pct"), "solve_ms": m.get("avg_lp_solve_time_ms"),
            "latency": m.get("avg_total_latency_ms"), "per_token": m.get("avg_score_per_token_cost"),
            "prompt": m.get("avg_total_prompt_tokens"), "completion": m.get("avg_total_completion_tokens"),
            "by_benchmark": {b: float(v) for b, v in m["by_benchmark"].items()}, "run_dir": m["run_dir"],
        }  # fmt: skip
    cmp = report["comparison_lp_vs_llm"]
    trends = {
        "score_delta": cmp["avg_score_lp_minus_llm"],
        "score_pct": cmp["avg_score_lp_vs_llm_pct"],
        "switch_delta": cmp["avg_estimated_switch_cost_ms_lp_minus_llm"],
        "vram_delta": cmp["avg_vram_used_gb_lp_minus_llm"],
        "gap_llm": cmp["llm_avg_oracle_gap_pct"],
        "won": (cmp["jobs_lp_won"], cmp["jobs_llm_won"], cmp["jobs_tied"]),
        "summary": cmp["jobs_won_summary"],
        "divergence": cmp["routing_divergence_pct"],
        "differed": (cmp["when_differed_lp_better"], cmp["when_differed_llm_better"], cmp["when_differed_tie"]),
        "subtasks": cmp["total_subtasks_compared"],
        "violations": (cmp["vram_violation_rate_lp"], cmp["vram_violation_rate_llm"]),
    }
    pareto = []
    for bench, points in report["pareto_data"].items():
        front = report["pareto_frontier_indices"][bench]
        for i, p in enumerate(points):
            pareto.append(
                (bench, p["routing_mode"], p["lambda_token"], p["lambda_switch"], p["horizon_depth"],
                 p["quality_estimator_type"], float(p["mean_score"]), float(p["mean_token_cost"]),
                 float(p["mean_switch_cost_est"]), float(p["mean_peak_vram_used_gb"]), i in front)
            )  # fmt: skip
        for mode, agg in report["aggregates"][bench].items():
            assert {"mean_score", "mean_token_cost", "mean_switch_cost_est", "mean_peak_vram_used_gb"} <= set(agg)
            assert mode in report["modes"]
    return summary, trends, pareto


def original_meta_analysis(meta: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, float]]:
    rows = meta["reports"]
    frontier, best = [], float("-inf")
    for r in sorted(rows, key=lambda r: float(r["mean_token_cost"] or 0.0)):
        if float(r["mean_score"]) >= best:
            frontier.append(r)
            best = float(r["mean_score"])
    by_mode: dict[str, list[float]] = {}
    for r in rows:
        by_mode.setdefault(r["routing_mode"], []).append(float(r["mean_score"]))
    return frontier, {m: sum(v) / len(v) for m, v in by_mode.items()}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("seed")
    mp = pytest.MonkeyPatch()
    mp.setenv("SWARM_DATABASE_URL", f"sqlite:///{tmp / 'swarm.db'}")
    try:
        code = main(["bench", "--dry_run", "--benchmark", "code_math_mix", "--benchmark", "workflowbench",
                     "--compare", "all", "--limit", "4", "--seed", "3", "--estimator_tag", "trained", "--judge",
                     "--output_dir", str(tmp / "b")])  # fmt: skip
    finally:
        mp.undo()
    assert code == 0
    return tmp / "b", tmp / "swarm.db"


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def test_original_analysis_reads_a_fresh_report(run: tuple[Path, Path]) -> None:
    out, _ = run
    report = json.loads((out / "report.json").read_text())
    summary, trends, pareto = original_report_analysis(report)
    rows = _csv(out / "report.csv")
    assert tuple(rows[0])[: len(ORIGINAL_CSV)] == ORIGINAL_CSV
    assert set(summary) == MODES
    for mode, s in summary.items():
        mine = [r for r in rows if r["routing_mode"] == mode]
        assert len(mine) == 8  # one row per job
        assert s["violations"] == sum(r["vram_violation"] == "True" for r in mine)
        assert s["vram"] == pytest.approx(sum(float(r["vram_used_gb"]) for r in mine) / 8, abs=1e-4)
        assert s["switch_ms"] == pytest.approx(sum(float(r["estimated_switch_cost_ms"]) for r in mine) / 8, abs=1e-2)
        for bench, value in s["by_benchmark"].items():
            scores = [float(r["score"]) for r in mine if r["benchmark"] == bench and r["score"]]
            assert value == pytest.approx(sum(scores) / len(scores), abs=1e-6)
        assert s["run_dir"].endswith(f"runs/{mode}") and Path(s["run_dir"]).is_dir()
        assert s["n"] > 0 and 0.0 <= s["mean_score"] <= 1.0 and s["latency"] is not None
    assert abs(summary["lp"]["gap"]) < 1e-6 and summary["lp"]["objective"] == pytest.approx(summary["lp"]["utility"])
    assert summary["random"]["gap"] > 0.0
    assert trends["score_delta"] == pytest.approx(summary["lp"]["mean_score"] - summary["llm"]["mean_score"], abs=1e-6)
    assert trends["vram_delta"] == pytest.approx(summary["lp"]["vram"] - summary["llm"]["vram"], abs=1e-4)
    assert sum(trends["won"]) == report["comparison_lp_vs_llm"]["jobs_compared"]
    assert trends["summary"] == "lp {}, llm {}, tie {}".format(*trends["won"])
    assert 0.0 <= trends["divergence"] <= 100.0 and trends["subtasks"] > 0
    assert {p[0] for p in pareto} == {"code_math_mix", "workflowbench", "all"}
    assert {p[5] for p in pareto} == {"trained"}  # --estimator_tag becomes quality_estimator_type
    for bench in ("code_math_mix", "workflowbench", "all"):
        points = [p for p in pareto if p[0] == bench]
        assert {p[1] for p in points} == MODES
        best = max(points, key=lambda p: (p[6], -p[7]))
        assert best[10]  # the best-scoring (then cheapest) point is on the frontier
    with (out / "report_pareto.csv").open() as fh:
        header = next(csv.reader(fh))
    assert header[:10] == ["benchmark_name", "routing_mode", "lambda_token", "lambda_switch", "horizon_depth",
                           "quality_estimator_type", "mean_score", "mean_token_cost", "mean_switch_cost_est",
                           "mean_peak_vram_used_gb"]  # fmt: skip
    modes_csv = _csv(out / "report_modes.csv")
    assert {r["mode"] for r in modes_csv} == MODES


def test_per_job_artifacts_and_plans(run: tuple[Path, Path]) -> None:
    out, _ = run
    summary = json.loads((out / "runs" / "lp" / "summary.json").read_text())
    assert len(summary["jobs"]) == 8
    for job in summary["jobs"]:
        assert job["plan"] and {"id", "task_type", "description", "estimated_tokens", "difficulty"} <= set(
            job["plan"][0]
        )
        assert set(job["task_to_model"]) == {p["id"] for p in job["plan"]}
        art = json.loads((out / "runs" / "lp" / "artifacts" / f"{job['job_id']}.json").read_text())
        assert art["benchmark_reference"]["id"] == job["example"]
        assert [s["id"] for s in art["benchmark_reference"]["subtasks"]] == [p["id"] for p in job["plan"]]
        assert "expected" in art["benchmark_reference"]["subtasks"][0]
        assert {a["subtask_id"] for a in art["assignments"]} == {p["id"] for p in job["plan"]}
        assert {r["subtask_id"] for r in art["results"]} == {p["id"] for p in job["plan"]}
        assert art["model_task_estimates"] and {"quality", "token_cost", "switch_cost", "utility"} <= set(
            art["model_task_estimates"][0]
        )
        assert set(art["oracle"]["best_per_task_by_utility"]) == {p["id"] for p in job["plan"]}
        pairs = {f"{p['task_type']}|{job['task_to_model'][p['id']]}" for p in job["plan"]}
        assert set(art["active_role_agents"]) <= pairs and art["active_role_agents"]
        assert set(art["active_roles"]) <= {p["task_type"] for p in job["plan"]}
        for ev in art["evaluations"]:  # --judge: the rationale is stored beside the judge's score
            assert ev["judge_score"] is None or isinstance(ev["judge_rationale"], str)
        assert any(ev["judge_score"] is not None and ev["judge_rationale"] for ev in art["evaluations"]) or any(
            ev["judge_error"] for ev in art["evaluations"]
        )


def test_job_start_and_job_costs_telemetry_also_in_the_database(run: tuple[Path, Path]) -> None:
    out, database = run
    events = [json.loads(line) for line in (out / "runs" / "llm" / "telemetry.jsonl").read_text().splitlines()]
    verdicts = [e for e in events if e["event"] == "judge"]  # --judge: the verdicts are telemetry too
    assert verdicts and all({"judge_score", "judge_rationale", "judge_error"} <= set(e) for e in verdicts)
    assert any(e["judge_score"] is not None and e["judge_rationale"] for e in verdicts)
    starts = [e for e in events if e["event"] == "job_start"]
    costs = [e for e in events if e["event"] == "job_costs"]
    assert len(starts) == len(costs) == 8
    for e in costs:
        assert set(COST_FIELDS) <= set(e)
        assert all("|" in pair for pair in e["active_role_agents"]) and e["n_role_agents"] == len(
            e["active_role_agents"]
        )
        assert e["bench_id"] == out.name and e["routing_mode"] == "llm"
    with sqlite3.connect(database) as con:
        n = con.execute(
            "select count(*) from telemetry_events where event_type = 'job_costs' "
            "and json_extract(payload, '$.bench_id') = ?",
            (out.name,),
        ).fetchone()[0]
        kinds = {r[0] for r in con.execute("select distinct event_type from telemetry_events")}
    assert n == 8 * len(MODES)
    assert {"job_start", "subtask_plan", "plan_step", "subtask", "job", "job_costs"} <= kinds


def test_experiment_without_suite_meta_report_per_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWARM_DATABASE_URL", f"sqlite:///{tmp_path / 'swarm.db'}")
    code = main(["experiment", "--dry_run", "--benchmark", "code_math_mix", "--limit", "2", "--lambda_switches",
                 "0,0.5", "--gpu_vrams", "8,24", "--compare", "both", "--exp_id", "e1", "--estimator_tag", "t1",
                 "--runs_dir", str(tmp_path)])  # fmt: skip
    assert code == 0
    root = tmp_path / "e1"
    index = json.loads((root / "index.json").read_text())
    assert index["exp_id"] == "e1" and index["suite"] is None
    assert index["lambda_switches"] == [0.0, 0.5] and index["gpu_vrams"] == [8.0, 24.0]
    assert all(Path(r["report"]).is_file() and r["bench_id"] for r in index["runs"])
    meta = json.loads((root / "meta_report.json").read_text())
    frontier, by_mode = original_meta_analysis(meta)
    assert len(meta["reports"]) == 4 * 2  # configurations x modes, not averaged away
    cells = {(r["lambda_switch"], r["gpu_vram_gb"], r["routing_mode"]) for r in meta["reports"]}
    assert cells == {(ls, g, m) for ls in (0.0, 0.5) for g in (8.0, 24.0) for m in ("lp", "llm")}
    for r in meta["reports"]:
        assert r["benchmark_name"] == "code_math_mix" and r["quality_estimator_type"] == "t1"
        assert (Path(r["bench_dir"]) / "report.json").is_file() and r["horizon_depth"] == 1
        assert {"mean_score", "mean_token_cost", "mean_switch_cost_est", "mean_peak_vram_used_gb"} <= set(r)
    assert frontier and set(by_mode) == {"lp", "llm"}
    assert (root / "meta_summary.png").stat().st_size > 0
    assert main(["experiment", "--dry_run", "--exp_id", "e1", "--runs_dir", str(tmp_path), "--limit", "1"]) == 2


def test_no_import_cycles_in_bench() -> None:
    import ast

    root = Path(__file__).resolve().parents[2] / "app" / "bench"
    graph: dict[str, set[str]] = {}
    for path in root.glob("*.py"):
        mod = f"app.bench.{path.stem}"
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):  # TYPE_CHECKING imports count too
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("app.bench"):
                deps.add(node.module)
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("app.bench")}
        graph[mod] = deps - {mod, "app.bench"}

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        nexts = graph.get(start, set())
        return goal in nexts or any(reaches(n, goal, seen | {n}) for n in nexts if n not in seen)

    cycles = [m for m in graph if reaches(m, m, set())]
    assert cycles == []
