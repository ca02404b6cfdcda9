"""Console output of `swarm bench`: progress bars per (mode, benchmark) and the per-mode results table."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

console = Console(stderr=True)


class BenchProgress:
    """rich bars, one per (mode, benchmark)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[tuple[str, str], TaskID] = {}

    def __call__(self, mode: str, benchmark: str, done: int, total: int) -> None:
        key = (mode, benchmark)
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(f"{mode:<10} {benchmark}", total=total)
        self.progress.update(self.tasks[key], completed=done)


def progress_bars() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


def print_report(report: dict[str, Any]) -> None:
    cols = (
        ("mode", "mode"), ("n", "n"), ("score", "avg_score"), ("±95%", "ci95"), ("judge", "judge_avg_score"),
        ("swaps/job", "avg_models_swapped_in"), ("est sw ms", "estimated_switch_ms_mean"),
        ("peak GB", "peak_vram_gb"), ("viol", "vram_violation_rate"), ("tok cost", "token_cost_mean"),
        ("obj/step", "objective_per_step_mean"), ("gap/step", "oracle_gap_per_step_mean"),
        ("fallback", "fallback_rate"),
    )  # fmt: skip
    table = Table(title=f"bench {'+'.join(report['benchmarks'])}: {report['n_examples']} jobs per mode")
    for head, _ in cols:
        table.add_column(head, justify="right")
    table.add_column("solve ms/step", justify="right")
    for m in report["modes"].values():
        cells = [_fmt(m.get(key)) for _, key in cols]
        table.add_row(*cells, _fmt(m["timing"].get("solve_time_ms_per_step_mean")))
    out = Console() if Console().is_terminal else Console(width=200)
    out.print(table)
    cmp = report.get("comparison_lp_vs_llm")
    if cmp:
        out.print(
            f"lp vs llm: jobs won/lost/tied {cmp['jobs_won']}/{cmp['jobs_lost']}/{cmp['jobs_tied']}, "
            f"routing divergence {_fmt(cmp['routing_divergence'])}, when differed {cmp['when_differed']}"
        )


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)
