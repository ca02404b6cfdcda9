"""Writes a benchmark run's files: report(.json/.csv), report_timing(.json/.csv), pareto, outputs, plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.bench.plots import plot_pareto

if TYPE_CHECKING:
    from app.bench.runner import JobRecord

CSV_FIELDS = (
    "mode", "n", "avg_score", "ci95", "score_std", "score_min", "score_max", "job_score_mean", "judge_avg_score",
    "avg_models_swapped_in", "estimated_switch_ms_mean", "avg_active_model_count", "peak_vram_gb",
    "mean_peak_vram_gb", "vram_violation_rate", "tokens_mean", "token_cost_mean", "score_per_token_cost",
    "n_steps", "objective_per_step_mean", "oracle_gap_per_step_mean", "fallback_rate", "subtask_success_rate",
)  # fmt: skip
TIMING_CSV_FIELDS = (
    "measured_switch_ms_mean", "wall_ms_mean", "sum_subtask_latency_ms_mean", "solve_time_ms_per_step_mean",
    "planner_latency_ms_per_step_mean",
)  # fmt: skip
PARETO_FIELDS = ("benchmark", "mode", "n", "score", "score_std", "ci95", "token_cost", "switch_ms", "peak_vram_gb")


def _dump(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")


def write_csv(path: Path, fields: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(fields), extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)


def report_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per mode (timing columns included, prefixed as in the JSON's 'timing' block)."""
    return [{**m, **{f"timing_{k}": v for k, v in m["timing"].items()}} for m in report["per_mode"].values()]


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


def write_report(out: Path, report: dict[str, Any], rows: list[dict[str, Any]], jobs: list[JobRecord]) -> None:
    deterministic, timing = split_timing(report)
    _dump(out / "report.json", deterministic)
    _dump(out / "report_timing.json", timing)
    with (out / "outputs.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=True, default=str) + "\n")
    write_csv(out / "report.csv", CSV_FIELDS, report_rows(report))
    write_csv(out / "report_timing.csv", ("mode", *(f"timing_{k}" for k in TIMING_CSV_FIELDS)), report_rows(report))
    front = set(report["pareto_frontier_indices"])
    pareto = [{**p, "on_frontier": i in front} for i, p in enumerate(report["pareto_data"])]
    write_csv(out / "report_pareto.csv", (*PARETO_FIELDS, "on_frontier"), pareto)
    for mode, metrics in report["per_mode"].items():
        run_dir = out / "runs" / mode
        run_dir.mkdir(parents=True, exist_ok=True)
        summaries = [
            {"job_id": j.result.job_id, "example": j.example.id, "block": j.block, "status": j.result.status,
             "error": j.result.error, **j.result.summary}
            for j in jobs
            if j.mode == mode
        ]  # fmt: skip
        _dump(run_dir / "summary.json", {"mode": mode, "metrics": metrics, "jobs": summaries})
    plot_pareto(report["pareto_data"], front, out / "report_pareto.png")
