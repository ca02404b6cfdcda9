"""The original tool's report fields: per job x mode rows, per-mode averages, the lp-vs-llm deltas, Pareto dicts."""

from __future__ import annotations

import math
from typing import Any

from app.bench.config import BenchConfig
from app.bench.stats import grouped_front, mean
from app.bench.types import JobRecord
from app.routing.registry import EXACT, PLANNER

TOTAL_COST_K = 0.001  # the original's total_cost_est = sum_token_cost + k * estimated_switch_cost_ms
# Keys of the original comparison_lp_vs_llm that get <key>_lp_minus_llm and <key>_lp_vs_llm_pct.
DELTA_KEYS = (
    "avg_score", "avg_models_swapped_in", "avg_estimated_switch_cost_ms", "avg_vram_used_gb", "avg_total_latency_ms",
    "avg_score_per_token_cost", "avg_chosen_utility", "avg_utility_efficiency", "avg_oracle_gap_pct",
)  # fmt: skip
# Original fields measured on the wall clock: the only values of report.json / report.csv that differ between two
# same-seed runs (the determinism test drops exactly these; report_timing.json has the rest of the timings).
WALL_CLOCK_MODE_FIELDS = (
    "avg_total_latency_ms",
    "total_latency_ms_sum",
    "avg_lp_solve_time_ms",
    "total_lp_solve_time_ms",
)
WALL_CLOCK_COMPARISON_FIELDS = ("avg_total_latency_ms_lp_minus_llm", "avg_total_latency_ms_lp_vs_llm_pct")
WALL_CLOCK_CSV_COLUMNS = ("total_latency_ms", "lp_solve_time_ms")


def _r(value: float | None, digits: int = 6) -> float | None:
    return None if value is None or not math.isfinite(value) else round(float(value), digits)


def _avg(values: list[float | None], digits: int = 6) -> float | None:
    return _r(mean([float(v) for v in values if v is not None]), digits)


def _job_score(job: JobRecord, rows: list[dict[str, Any]]) -> float | None:
    """Mean of the job's scored subtasks (heuristic code scores excluded, failures count 0) — as report.py."""
    mine = [r for r in rows if r["mode"] == job.mode and r["job"] == job.example.id]
    vals = [float(r["score"]) for r in mine if r["score"] is not None and r.get("score_method") != "heuristic"]
    return sum(vals) / len(vals) if vals else None


def job_rows(
    jobs: list[JobRecord], rows: list[dict[str, Any]], config: BenchConfig, gpu_name: str
) -> list[dict[str, Any]]:
    """One row per job and mode with the original report.csv columns (plus status, block and step counts)."""
    out = []
    for job in jobs:
        s = job.result.summary
        steps = job.result.steps
        score = _job_score(job, rows)
        chosen = sum(float(st["objective"]) for st in steps)
        optimum = None if not steps or any(o is None for o in job.optima) else sum(float(o or 0.0) for o in job.optima)
        if len(job.optima) != len(steps):
            optimum = None
        cost = float(s.get("token_cost") or 0.0)
        switch_ms = float(s.get("estimated_switch_ms") or 0.0)
        total_cost = cost + TOTAL_COST_K * switch_ms
        mine = [r for r in rows if r["mode"] == job.mode and r["job"] == job.example.id]
        types = {r["task_type"] for r in mine if r["model"]}
        role_agents = {f"{r['task_type']}|{r['model']}" for r in mine if r["model"]}
        vram = float(s.get("vram_peak_gb") or 0.0)
        out.append(
            {
                "routing_mode": job.mode,
                "benchmark": job.example.benchmark,
                "example_id": job.example.id,
                "job_id": job.result.job_id,
                "metric": "+".join(sorted({str(r["score_method"]) for r in mine})),
                "score": _r(score),
                "active_models": int(s.get("active_model_count") or 0),
                "active_roles": len(types),
                "active_role_agents": len(role_agents),
                "models_swapped_in": int(s.get("models_swapped_in") or 0),
                "estimated_switch_cost_ms": _r(switch_ms, 3),
                "vram_used_gb": _r(vram, 4),
                "vram_violation": bool(s.get("vram_violation")),
                "sum_token_cost": _r(cost),
                "gpu_name": gpu_name,
                "total_latency_ms": _r(float(s.get("sum_subtask_latency_ms") or 0.0), 3),
                "total_prompt_tokens": int(s.get("prompt_tokens") or 0),
                "total_completion_tokens": int(s.get("eval_tokens") or 0),
                "score_per_token_cost": _r(score / cost) if score is not None and cost > 0 else None,
                "vram_utilization": _r(vram / config.gpu_vram_gb, 4),
                "lp_objective_value": _r(optimum),
                "chosen_utility": _r(chosen),
                "total_cost_est": _r(total_cost),
                "utility_efficiency": _r(chosen / total_cost) if total_cost > 0 else None,
                "oracle_gap_pct": _r(100.0 * (optimum - chosen) / abs(optimum), 4)
                if optimum is not None and abs(optimum) > 1e-12
                else None,
                "lp_solve_time_ms": _r(sum(float(x) for x in s.get("solve_time_ms_per_step") or []), 4),
                "status": job.result.status,
                "block": job.block,
                "n_plan_steps": len(steps),
            }
        )
    return out


def mode_fields(mode: str, jrows: list[dict[str, Any]], out_dir: str) -> dict[str, Any]:
    """The original `modes.<mode>` fields, computed from the per-job rows of that mode."""
    mine = [r for r in jrows if r["routing_mode"] == mode]

    def col(key: str) -> list[float | None]:
        return [r[key] for r in mine]

    scored = [float(r["score"]) for r in mine if r["score"] is not None]
    by_bench: dict[str, list[float]] = {}
    for r in mine:
        if r["score"] is not None:
            by_bench.setdefault(r["benchmark"], []).append(float(r["score"]))
    latency = [float(r["total_latency_ms"] or 0.0) for r in mine]
    solve = [float(r["lp_solve_time_ms"] or 0.0) for r in mine]
    prompt = [float(r["total_prompt_tokens"]) for r in mine]
    completion = [float(r["total_completion_tokens"]) for r in mine]
    violations = sum(1 for r in mine if r["vram_violation"])
    return {
        "n_scored": len(scored),
        "by_benchmark": {b: _r(mean(v)) for b, v in by_bench.items()},
        "avg_estimated_switch_cost_ms": _avg(col("estimated_switch_cost_ms"), 3),
        "avg_vram_used_gb": _avg(col("vram_used_gb"), 4),
        "run_dir": f"{out_dir}/runs/{mode}",
        "vram_violation_count": violations,
        "avg_oracle_gap_pct": _avg(col("oracle_gap_pct"), 4),
        "avg_total_cost_est": _avg(col("total_cost_est")),
        "avg_utility_efficiency": _avg(col("utility_efficiency")),
        "avg_total_latency_ms": _avg(list(latency), 3),
        "total_latency_ms_sum": _r(sum(latency), 3),
        "avg_total_prompt_tokens": _avg(list(prompt), 3),
        "total_prompt_tokens_sum": int(sum(prompt)),
        "avg_total_completion_tokens": _avg(list(completion), 3),
        "total_completion_tokens_sum": int(sum(completion)),
        "avg_score_per_token_cost": _avg(col("score_per_token_cost"), 4),
        "avg_lp_objective_value": _avg(col("lp_objective_value")),
        "avg_chosen_utility": _avg(col("chosen_utility")),
        "avg_lp_solve_time_ms": _avg(list(solve), 4),
        "total_lp_solve_time_ms": _r(sum(solve), 4),
    }


def _delta(a: Any, b: Any) -> tuple[float | None, float | None]:
    if a is None or b is None:
        return None, None
    diff = float(a) - float(b)
    return _r(diff), (_r(100.0 * diff / abs(float(b)), 4) if abs(float(b)) > 1e-12 else None)


def comparison_fields(modes: dict[str, dict[str, Any]], new: dict[str, Any]) -> dict[str, Any]:
    """The original comparison_lp_vs_llm keys, from the two modes' fields and the new comparison (lp vs llm)."""
    lp, llm = modes[EXACT], modes[PLANNER]
    out: dict[str, Any] = {}
    for key in DELTA_KEYS:
        out[f"{key}_lp_minus_llm"], out[f"{key}_lp_vs_llm_pct"] = _delta(lp.get(key), llm.get(key))
    differed = new["when_differed"]
    won, lost, tied = new["jobs_won"], new["jobs_lost"], new["jobs_tied"]
    out |= {
        "vram_violation_rate_lp": lp.get("vram_violation_rate"),
        "vram_violation_rate_llm": llm.get("vram_violation_rate"),
        "llm_avg_oracle_gap_pct": llm.get("avg_oracle_gap_pct"),
        "jobs_lp_won": won,
        "jobs_llm_won": lost,
        "jobs_tied": tied,
        "jobs_won_summary": f"lp {won}, llm {lost}, tie {tied}",
        "routing_divergence_pct": None if new["routing_divergence"] is None else _r(100 * new["routing_divergence"], 4),
        "when_differed_lp_better": differed[f"{EXACT}_better"],
        "when_differed_llm_better": differed[f"{PLANNER}_better"],
        "when_differed_tie": differed["tied"],
        "total_subtasks_compared": new["subtasks_compared"],
    }
    return out


def pareto_by_benchmark(points: list[dict[str, Any]], config: BenchConfig) -> dict[str, Any]:
    """`aggregates.<bench>.<mode>`, `pareto_data.<bench>` and `pareto_frontier_indices.<bench>` as the original
    nested them, each point carrying the original names beside the new ones."""
    aggregates: dict[str, dict[str, Any]] = {}
    data: dict[str, list[dict[str, Any]]] = {}
    for p in points:
        seed = {
            "mean_score": p["score"],
            "mean_token_cost": p["token_cost"],
            "mean_switch_cost_est": p["switch_ms"],
            "mean_peak_vram_used_gb": p["peak_vram_gb"],
        }
        aggregates.setdefault(p["benchmark"], {})[p["mode"]] = {**seed, **p}
        data.setdefault(p["benchmark"], []).append(
            {
                "routing_mode": p["mode"],
                "lambda_token": config.lambda_token,
                "lambda_switch": config.lambda_switch,
                "horizon_depth": config.horizon_depth,
                "gpu_vram_gb": config.gpu_vram_gb,
                "quality_estimator_type": config.estimator_tag,
                **seed,
                **p,
            }
        )
    fronts = {
        b: grouped_front(pts, "benchmark", ("score",), ("token_cost", "switch_ms", "peak_vram_gb"))
        for b, pts in data.items()
    }
    return {"aggregates": aggregates, "pareto_data": data, "pareto_frontier_indices": fronts}
