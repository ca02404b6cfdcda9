"""Benchmark report: per-mode metrics, mode comparisons, aggregates and Pareto data from the run's jobs."""

from __future__ import annotations

from collections import Counter
from typing import Any

from app.bench.config import BenchConfig
from app.bench.report_defs import DEFINITIONS
from app.bench.report_seed import (
    WALL_CLOCK_COMPARISON_FIELDS,
    WALL_CLOCK_CSV_COLUMNS,
    WALL_CLOCK_MODE_FIELDS,
    comparison_fields,
    job_rows,
    mode_fields,
    pareto_by_benchmark,
)
from app.bench.stats import grouped_front, mean, percentile, summary
from app.bench.types import JobRecord
from app.domain.models import Agent
from app.routing.registry import EXACT, PLANNER

SCHEMA = "swarm-bench-report/2"
EPS = 1e-9
PARETO_MAX = ("score",)
PARETO_MIN = ("token_cost", "switch_ms", "peak_vram_gb")


def _rows_of(rows: list[dict[str, Any]], mode: str, benchmark: str | None = None) -> list[dict[str, Any]]:
    return [r for r in rows if r["mode"] == mode and (benchmark is None or r["benchmark"] == benchmark)]


def _counts(row: dict[str, Any]) -> bool:
    # Unexecuted code (code_eval off) only gets a labelled heuristic score: kept out of the averages.
    return row["score"] is not None and row.get("score_method") != "heuristic"


def _scores(rows: list[dict[str, Any]]) -> list[float]:
    return [float(r["score"]) for r in rows if _counts(r)]


def _job_scores(rows: list[dict[str, Any]]) -> dict[str, float]:
    by_job: dict[str, list[float]] = {}
    for r in rows:
        if _counts(r):
            by_job.setdefault(r["job"], []).append(float(r["score"]))
    return {j: sum(v) / len(v) for j, v in by_job.items()}


def _r(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)


def _m(values: list[float], digits: int = 6) -> float | None:
    return _r(mean(values), digits)


def _steps(jobs: list[JobRecord]) -> list[tuple[dict[str, Any], float | None]]:
    out: list[tuple[dict[str, Any], float | None]] = []
    for j in jobs:
        optima = j.optima if len(j.optima) == len(j.result.steps) else [None] * len(j.result.steps)
        out += list(zip(j.result.steps, optima, strict=True))
    return out


def step_metrics(jobs: list[JobRecord]) -> dict[str, Any]:
    """Objective, solve time, planner latency, fallbacks and the oracle gap, all per plan step."""
    steps = _steps(jobs)
    objectives = [float(s["objective"]) for s, _ in steps]
    gaps = [float(opt) - float(s["objective"]) for s, opt in steps if opt is not None]
    rel = [(float(opt) - float(s["objective"])) / max(abs(float(opt)), EPS) for s, opt in steps if opt is not None]
    sources = Counter(str(s["routing_source"]) for s, _ in steps)
    solve = [float(s["lp_solve_time_ms"]) for s, _ in steps if s.get("lp_solve_time_ms") is not None]
    planner = [float(s["planner"].get("latency_ms", 0.0)) for s, _ in steps if s.get("planner")]
    fallbacks = sum(n for src, n in sources.items() if src.startswith("fallback"))
    return {
        "n_steps": len(steps),
        "objective_per_step_mean": _m(objectives),
        "oracle_gap_per_step_mean": _m(gaps),
        "oracle_gap_per_step_max": _r(max(gaps)) if gaps else None,
        "oracle_gap_rel_per_step_mean": _m(rel),
        "oracle_optimal_step_rate": _m([1.0 if abs(g) <= 1e-6 else 0.0 for g in gaps]),
        "oracle_steps": len(gaps),
        "routing_sources": dict(sorted(sources.items())),
        "fallback_rate": _r(fallbacks / len(steps)) if steps else None,
        "planner_steps": len(planner),
        "timing": {
            "solve_time_ms_per_step_mean": _m(solve, 4),
            "solve_time_ms_per_step_p50": _r(percentile(solve, 0.5), 4),
            "solve_time_ms_per_step_p95": _r(percentile(solve, 0.95), 4),
            "solve_time_ms_per_step_max": _r(max(solve), 4) if solve else None,
            "planner_latency_ms_per_step_mean": _m(planner, 4),
        },
    }


def job_metrics(jobs: list[JobRecord]) -> dict[str, Any]:
    """Switching, VRAM, tokens and latency, per job."""
    s = [j.result.summary for j in jobs]

    def col(key: str) -> list[float]:
        return [float(x.get(key) or 0.0) for x in s]

    return {
        "n_jobs": len(jobs),
        "failed_jobs": sum(1 for j in jobs if j.result.status != "succeeded"),
        "subtask_success_rate": _m(col("success_rate")),
        "avg_models_swapped_in": _m(col("models_swapped_in")),
        "estimated_switch_ms_mean": _m(col("estimated_switch_ms"), 3),
        "avg_active_model_count": _m(col("active_model_count")),
        "peak_vram_gb": _r(max(col("vram_peak_gb"), default=0.0), 4),
        "mean_peak_vram_gb": _m(col("vram_peak_gb"), 4),
        "vram_violation_rate": _m([1.0 if x.get("vram_violation") else 0.0 for x in s]),
        "planned_vram_violation_rate": _m([1.0 if (x.get("planned_vram_violation_gb") or 0) > EPS else 0.0 for x in s]),
        "tokens_mean": _m(col("total_tokens"), 3),
        "eval_tokens_mean": _m(col("eval_tokens"), 3),
        "token_cost_mean": _m(col("token_cost")),
        "token_cost_total": _r(sum(col("token_cost"))),
        "timing": {
            "measured_switch_ms_mean": _m(col("measured_switch_ms"), 3),
            "wall_ms_mean": _m(col("wall_ms"), 3),
            "wall_ms_total": _r(sum(col("wall_ms")), 3),
            "sum_subtask_latency_ms_mean": _m(col("sum_subtask_latency_ms"), 3),
        },
    }


def score_metrics(rows: list[dict[str, Any]], benchmarks: list[str]) -> dict[str, Any]:
    scores = _scores(rows)
    sm = summary(scores)
    jobs = summary(list(_job_scores(rows).values()))
    judged = [float(r["judge_score"]) for r in rows if r["judge_score"] is not None]
    by_bench = {}
    for b in benchmarks:
        sub = [r for r in rows if r["benchmark"] == b]
        bs = summary(_scores(sub))
        by_bench[b] = {"n": bs["n"], "avg_score": bs["mean"], "ci95": bs["ci95"], "jobs": len({r["job"] for r in sub})}
    return {
        "n": sm["n"],
        "n_subtasks": len(rows),
        "avg_score": sm["mean"],
        "ci95": sm["ci95"],
        "ci95_low": sm["ci95_low"],
        "ci95_high": sm["ci95_high"],
        "score_std": sm["std"],
        "score_min": sm["min"],
        "score_max": sm["max"],
        "job_score_mean": jobs["mean"],
        "job_score_ci95": jobs["ci95"],
        "score_methods": dict(sorted(Counter(str(r["score_method"]) for r in rows).items())),
        "by_benchmark_detail": by_bench,
        "judge_avg_score": _m(judged),
        "judge_n": len(judged),
        "judge_failures": sum(1 for r in rows if r["judge_error"] and r["status"] == "done"),
    }


def mode_metrics(mode: str, jobs: list[JobRecord], rows: list[dict[str, Any]], benchmarks: list[str]) -> dict[str, Any]:
    mjobs = [j for j in jobs if j.mode == mode]
    score = score_metrics(_rows_of(rows, mode), benchmarks)
    job = job_metrics(mjobs)
    step = step_metrics(mjobs)
    cost = job["token_cost_mean"]
    per_cost = None if not cost or score["avg_score"] is None else _r(score["avg_score"] / cost, 4)
    timing = {**job.pop("timing"), **step.pop("timing")}
    return {"mode": mode, **score, **job, "score_per_token_cost": per_cost, **step, "timing": timing}


def compare_modes(rows: list[dict[str, Any]], a: str, b: str) -> dict[str, Any]:
    """Jobs won/lost/tied by `a` against `b`, routing divergence, and who was better where they differed."""
    ja, jb = _job_scores(_rows_of(rows, a)), _job_scores(_rows_of(rows, b))
    common = [j for j in ja if j in jb]
    all_jobs = {r["job"] for r in _rows_of(rows, a)} & {r["job"] for r in _rows_of(rows, b)}
    won = sum(1 for j in common if ja[j] > jb[j] + EPS)
    lost = sum(1 for j in common if jb[j] > ja[j] + EPS)
    rb = {(r["job"], r["subtask"]): r for r in _rows_of(rows, b)}
    pairs = [(r, rb[(r["job"], r["subtask"])]) for r in _rows_of(rows, a) if (r["job"], r["subtask"]) in rb]
    diff = [(x, y) for x, y in pairs if x["model"] != y["model"] and _counts(x) and _counts(y)]

    def better(x: dict[str, Any], y: dict[str, Any]) -> bool:
        return float(x["score"] or 0.0) > float(y["score"] or 0.0) + EPS

    a_better = sum(1 for x, y in diff if better(x, y))
    b_better = sum(1 for x, y in diff if better(y, x))
    return {
        "modes": [a, b],
        "jobs_compared": len(common),
        "jobs_won": won,
        "jobs_lost": lost,
        "jobs_tied": len(common) - won - lost,
        "jobs_unscored": len(all_jobs) - len(common),  # only heuristic (unexecuted code) scores: not comparable
        "subtasks_compared": len(pairs),
        "routing_divergence": _r(len(diff) / len(pairs)) if pairs else None,
        "when_differed": {
            "n": len(diff),
            f"{a}_better": a_better,
            f"{b}_better": b_better,
            "tied": len(diff) - a_better - b_better,
        },
        "mean_score_delta": _r((mean(list(ja.values())) or 0.0) - (mean(list(jb.values())) or 0.0)),
    }


def aggregates(rows: list[dict[str, Any]], jobs: list[JobRecord], config: BenchConfig) -> list[dict[str, Any]]:
    """Per (benchmark, mode), benchmark 'all' included: every number is computed inside that cell."""
    out = []
    for bench in [*config.benchmarks, "all"]:
        for mode in config.modes:
            sel = _rows_of(rows, mode, None if bench == "all" else bench)
            js = [j for j in jobs if j.mode == mode and (bench == "all" or j.example.benchmark == bench)]
            sm = summary(_scores(sel))
            out.append(
                {
                    "benchmark": bench,
                    "mode": mode,
                    "n": sm["n"],
                    "score": sm["mean"],
                    "score_std": sm["std"],
                    "ci95": sm["ci95"],
                    "token_cost": _m([float(j.result.summary.get("token_cost") or 0.0) for j in js]),
                    "switch_ms": _m([float(j.result.summary.get("estimated_switch_ms") or 0.0) for j in js], 3),
                    "peak_vram_gb": _m([float(j.result.summary.get("vram_peak_gb") or 0.0) for j in js], 4),
                    "models_swapped_in": _m([float(j.result.summary.get("models_swapped_in") or 0) for j in js]),
                    "vram_violation_rate": _m([1.0 if j.result.summary.get("vram_violation") else 0.0 for j in js]),
                    # Plans that put more than G on the GPU (the scheduler never lets one run that way).
                    "planned_vram_violation_rate": _m(
                        [1.0 if (j.result.summary.get("planned_vram_violation_gb") or 0) > EPS else 0.0 for j in js]
                    ),
                }
            )
    return out


def build_report(
    config: BenchConfig,
    agents: list[Agent],
    jobs: list[JobRecord],
    rows: list[dict[str, Any]],
    starts: list[dict[str, Any]],
    elapsed_s: float,
    gpu_name: str = "",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(report, per job x mode rows): the original report's fields under their original names and nesting, the
    new ones beside them."""
    modes = config.modes
    out = config.output_dir
    jrows = job_rows(jobs, rows, config, gpu_name)
    per_mode = {m: {**mode_metrics(m, jobs, rows, config.benchmarks), **mode_fields(m, jrows, out)} for m in modes}
    others = [m for m in modes if m != EXACT]
    comparisons = {f"{EXACT}_vs_{m}": compare_modes(rows, EXACT, m) for m in others} if EXACT in modes else {}
    points = aggregates(rows, jobs, config)
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "bench_dir": out,
        "n_examples": len({j.example.id for j in jobs}),
        "modes": per_mode,
        "mode_order": modes,
        "config": config.model_dump(mode="json", exclude={"output_dir"}),
        "agents": [a.name for a in agents],
        "benchmarks": config.benchmarks,
        "mode_starts": starts,
        "comparisons": comparisons,
        **pareto_by_benchmark(points, config),
        "pareto_points": points,
        "pareto_points_frontier": grouped_front(points, "benchmark", PARETO_MAX, PARETO_MIN),
        "pareto_axes": {"maximize": list(PARETO_MAX), "minimize": list(PARETO_MIN)},
        "report_csv": f"{out}/report.csv",
        "report_modes_csv": f"{out}/report_modes.csv",
        "report_pareto_csv": f"{out}/report_pareto.csv",
        "outputs_jsonl": f"{out}/outputs.jsonl",
        "artifacts_dir": f"{out}/runs/<mode>/artifacts",
        "wall_clock_fields": {
            "modes": list(WALL_CLOCK_MODE_FIELDS),
            "comparison_lp_vs_llm": list(WALL_CLOCK_COMPARISON_FIELDS),
            "report_csv": list(WALL_CLOCK_CSV_COLUMNS),
        },
        "definitions": DEFINITIONS,
        "timing": {"elapsed_s": round(elapsed_s, 3)},
    }
    if EXACT in modes and PLANNER in modes:
        new = comparisons[f"{EXACT}_vs_{PLANNER}"]
        report["comparison_lp_vs_llm"] = {**comparison_fields(per_mode, new), **new}
    return report, jrows
