"""Writes a benchmark run's files: report(.json/.csv), report_modes.csv, timing, pareto, outputs, artifacts, plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from app.bench.artifacts import job_artifact, write_json
from app.bench.plots import plot_pareto
from app.bench.types import JobRecord
from app.domain.status import SubtaskStatus

# report.csv: one row per job and mode, the original columns first.
JOB_CSV_FIELDS = (
    "routing_mode", "benchmark", "example_id", "job_id", "metric", "score", "active_models", "active_roles",
    "active_role_agents", "models_swapped_in", "estimated_switch_cost_ms", "vram_used_gb", "vram_violation",
    "sum_token_cost", "gpu_name", "total_latency_ms", "total_prompt_tokens", "total_completion_tokens",
    "score_per_token_cost", "vram_utilization", "lp_objective_value", "chosen_utility", "total_cost_est",
    "utility_efficiency", "oracle_gap_pct", "lp_solve_time_ms", "status", "block", "n_plan_steps",
)  # fmt: skip
# report_modes.csv: the per-mode summary (what report.csv held before it went back to one row per job).
CSV_FIELDS = (
    "mode", "n", "avg_score", "ci95", "score_std", "score_min", "score_max", "job_score_mean", "judge_avg_score",
    "avg_models_swapped_in", "estimated_switch_ms_mean", "avg_active_model_count", "peak_vram_gb",
    "mean_peak_vram_gb", "vram_violation_rate", "vram_violation_count", "tokens_mean", "token_cost_mean",
    "score_per_token_cost", "n_steps", "objective_per_step_mean", "oracle_gap_per_step_mean", "avg_oracle_gap_pct",
    "avg_chosen_utility", "avg_lp_objective_value", "avg_total_cost_est", "fallback_rate", "subtask_success_rate",
)  # fmt: skip
TIMING_CSV_FIELDS = (
    "measured_switch_ms_mean", "wall_ms_mean", "sum_subtask_latency_ms_mean", "solve_time_ms_per_step_mean",
    "planner_latency_ms_per_step_mean",
)  # fmt: skip
PARETO_FIELDS = (
    "benchmark_name", "routing_mode", "lambda_token", "lambda_switch", "horizon_depth", "quality_estimator_type",
    "mean_score", "mean_token_cost", "mean_switch_cost_est", "mean_peak_vram_used_gb", "gpu_vram_gb", "n",
    "score_std", "ci95", "on_frontier",
)  # fmt: skip


def _dump(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")


def write_csv(path: Path, fields: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def report_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per mode (timing columns included, prefixed as in the JSON's 'timing' block)."""
    return [{**m, **{f"timing_{k}": v for k, v in m["timing"].items()}} for m in report["modes"].values()]


def split_timing(value: Any) -> tuple[Any, Any]:
    """(the report without its wall-clock values, just those values) — the first is identical across same-seed
    runs, the second is measured."""
    if isinstance(value, dict):
        kept, timed = {}, {}
        for key, item in value.items():
            if key in ("timing", "elapsed_s"):
                timed[key] = item
                continue
            k, t = split_timing(item)
            kept[key] = k
            if t not in (None, {}, []):
                timed[key] = t
        return kept, timed
    return value, None


def pareto_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for bench, points in report["pareto_data"].items():
        front = set(report["pareto_frontier_indices"].get(bench, []))
        rows += [{**p, "benchmark_name": bench, "on_frontier": i in front} for i, p in enumerate(points)]
    return rows


def write_report(
    out: Path,
    report: dict[str, Any],
    rows: list[dict[str, Any]],
    jobs: list[JobRecord],
    job_rows: list[dict[str, Any]],
) -> None:
    deterministic, timing = split_timing(report)
    _dump(out / "report.json", deterministic)
    _dump(out / "report_timing.json", timing)
    with (out / "outputs.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=True, default=str) + "\n")
    write_csv(out / "report.csv", JOB_CSV_FIELDS, job_rows)
    write_csv(out / "report_modes.csv", CSV_FIELDS, report_rows(report))
    write_csv(out / "report_timing.csv", ("mode", *(f"timing_{k}" for k in TIMING_CSV_FIELDS)), report_rows(report))
    write_csv(out / "report_pareto.csv", PARETO_FIELDS, pareto_rows(report))
    for mode, metrics in report["modes"].items():
        write_mode_dir(out, mode, metrics, rows, [j for j in jobs if j.mode == mode])
    plot_pareto(report, out / "report_pareto.png")


def evaluation(row: dict[str, Any]) -> dict[str, Any]:
    keys = ("score_method", "judge_score", "judge_rationale", "judge_error")
    return {
        "subtask_id": row["subtask"],
        "success": row["status"] == SubtaskStatus.DONE,
        "benchmark_score": row["score"],
        **{k: row.get(k) for k in keys},
    }


def write_mode_dir(
    out: Path, mode: str, metrics: dict[str, Any], rows: list[dict[str, Any]], jobs: list[JobRecord]
) -> None:
    """runs/<mode>/summary.json (each job with its plan) and runs/<mode>/artifacts/<job>.json."""
    run_dir = out / "runs" / mode
    summaries = []
    for j in jobs:
        plan = [
            {k: s.get(k) for k in ("id", "task_type", "description", "estimated_tokens", "difficulty", "deps")}
            for s in (sub.model_dump() for sub in j.example.plain_subtasks())
        ]
        summaries.append(
            {"job_id": j.result.job_id, "example": j.example.id, "block": j.block, "status": j.result.status,
             "error": j.result.error, "benchmark_name": j.example.benchmark, "plan": plan, **j.result.summary}
        )  # fmt: skip
        artifact = job_artifact(j.result, run_id=f"{out.name}-{mode}", query=None, routing_mode=mode)
        mine = [r for r in rows if r["mode"] == mode and r["job"] == j.example.id]
        artifact |= {
            "benchmark_name": j.example.benchmark,
            "example_id": j.example.id,
            "benchmark_reference": j.example.model_dump(mode="json"),
            "subtasks": plan,
            "evaluations": [evaluation(r) for r in mine],
        }
        write_json(run_dir / "artifacts" / f"{j.result.job_id}.json", artifact)
    _dump(run_dir / "summary.json", {"mode": mode, "metrics": metrics, "jobs": summaries})
