"""What `swarm bench` and `swarm experiment` show: rich progress bars and result tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # rich is imported when a command draws, not by `swarm --help`
    from rich.console import Console
    from rich.progress import Progress, TaskID


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def stdout_console() -> Console:
    """Tables go to stdout; wide enough for every column when stdout is not a terminal."""
    from rich.console import Console

    return Console() if Console().is_terminal else Console(width=200)


def progress_bars() -> Progress:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    return Progress(*columns, console=stderr_console())


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


class SweepProgress:
    """One bar over the sweep's runs, and one bar per (mode, benchmark) of the run in progress."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.runs = progress.add_task("sweep", total=None)
        self.cells = BenchProgress(progress)
        self.n = 0

    def on_run(self, name: str, k: int, n: int) -> None:
        """Run k (0-based) of n starts: the runs bar shows k done; the last run's bars make way for the new one's."""
        self.n = n
        self.progress.update(self.runs, total=n, completed=k, description=f"run {k + 1}/{n} {name}")
        for task in self.cells.tasks.values():
            self.progress.remove_task(task)
        self.cells = BenchProgress(self.progress)

    def __call__(self, mode: str, benchmark: str, done: int, total: int) -> None:
        self.cells(mode, benchmark, done, total)

    def finish(self) -> None:
        self.progress.update(self.runs, total=self.n, completed=self.n, description=f"sweep: {self.n} runs")


def print_report(report: dict[str, Any]) -> None:
    from rich.table import Table

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
        cells = [fmt(m.get(key)) for _, key in cols]
        table.add_row(*cells, fmt(m["timing"].get("solve_time_ms_per_step_mean")))
    out = stdout_console()
    out.print(table)
    cmp = report.get("comparison_lp_vs_llm")
    if cmp:
        out.print(
            f"lp vs llm: jobs won/lost/tied {cmp['jobs_won']}/{cmp['jobs_lost']}/{cmp['jobs_tied']}, "
            f"routing divergence {fmt(cmp['routing_divergence'])}{_differed(cmp.get('when_differed'))}"
        )


def _differed(d: Any) -> str:
    if not isinstance(d, dict) or not d.get("n"):
        return ""
    return f"; where the routing differed ({d['n']} subtasks): lp better {d['lp_better']}, llm better " + (
        f"{d['llm_better']}, tied {d['tied']}"
    )


def print_sweep(result: dict[str, Any], out: Console) -> None:
    """One row per (run, mode), then the mean over the runs per (benchmark, mode)."""
    from rich.table import Table

    runs = Table(title=f"experiment {result['index']['suite']}: {len(result['index']['runs'])} runs")
    for head in ("benchmarks", "G GB", "horizon", "λ_switch", "mode", "score", "±95%", "tok cost", "est sw ms"):
        runs.add_column(head, justify="left" if head in ("benchmarks", "mode") else "right")
    runs.add_column("peak GB", justify="right")
    runs.add_column("viol", justify="right")
    for entry in result["index"]["runs"]:
        where = ("+".join(entry["benchmarks"]), f"{entry['gpu_vram_gb']:g}", str(entry["horizon_depth"]))
        for mode, m in entry["per_mode"].items():
            keys = ("avg_score", "ci95", "token_cost_mean", "estimated_switch_ms_mean", "peak_vram_gb")
            values = [fmt(m.get(k)) for k in keys]
            runs.add_row(*where, f"{entry['lambda_switch']:g}", mode, *values, fmt(m.get("vram_violation_rate")))
    out.print(runs)
    meta = Table(title="mean over the runs")
    for head in ("benchmark", "mode", "runs", "score", "tok cost", "switch ms", "peak GB"):
        meta.add_column(head, justify="left" if head in ("benchmark", "mode") else "right")
    for row in result["meta"]["rows"]:
        keys = ("n_configs", "mean_score", "mean_token_cost", "mean_switch_ms", "mean_peak_vram_gb")
        meta.add_row(row["benchmark"], row["mode"], *(fmt(row.get(k)) for k in keys))
    out.print(meta)


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)
