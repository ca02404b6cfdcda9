"""`swarm bench` and `swarm experiment`: benchmark runs and sweeps."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.backends.base import Backend
from app.bench.experiments import SweepSpec, run_experiment, sweep_dir
from app.bench.registry import list_benchmarks
from app.bench.runner import BenchConfig, BenchResult, private_sim, run_bench
from app.cli.common import (
    MAX_HORIZON,
    add_backend_flags,
    check_output_dir,
    check_output_file,
    finite_nonneg_float,
    finite_positive_float,
    horizon_depth,
    int_range,
    load_estimator,
    non_empty,
    number_list,
    positive_int,
    settings_from,
)
from app.cli.knobs import add_compare_flag, add_knob_flags
from app.cli.models import add_ensure_flag, ensure_installed
from app.core.settings import Settings
from app.domain.models import Agent
from app.execution.runtime import open_runtime
from app.routing import Estimator, load_agents

console = Console(stderr=True)
MAX_LIMIT = 500  # BenchConfig.limit
MAX_VRAM_GB = 4096.0  # BenchConfig.gpu_vram_gb


def vram_gb(text: str) -> float:
    value = finite_positive_float(text)
    if value > MAX_VRAM_GB:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_VRAM_GB:g} GB, got {text!r}")
    return value


def _bench_flags(p: argparse.ArgumentParser) -> None:
    add_compare_flag(p)
    p.add_argument("--limit", type=int_range(1, MAX_LIMIT), default=20, help="examples per benchmark")
    p.add_argument("--mix", choices=["grouped", "interleave"], default="grouped", help="arrival order")
    add_knob_flags(p)
    p.add_argument("--code_eval", action="store_true", help="run code answers against their tests (sandboxed)")
    p.add_argument("--judge", action="store_true", help="also score every answer with an LLM judge")
    p.add_argument("--judge_model", type=non_empty, help="judge model (default: the smallest agent)")
    p.add_argument(
        "--planner_model", type=non_empty, help="planner model for --compare llm (default: the smallest agent)"
    )
    p.add_argument("--warm", type=non_empty, action="append", default=[], help="model loaded before every mode starts")
    p.add_argument(
        "--block_size", type=positive_int, default=10, help="jobs per block; the mode order rotates per block"
    )
    p.add_argument("--freeze_estimator", action="store_true", help="no online learning during the run")
    p.add_argument("--estimator_in", type=non_empty, help="start every mode from this estimator state (JSON)")
    p.add_argument("--output_dir", type=non_empty, help="output folder (default: <runs_dir>/<timestamp>_bench)")
    p.add_argument("--data_dir", type=non_empty, help="dataset folder (mbpp JSONL)")
    p.add_argument(
        "--sim_device_gb", type=finite_positive_float, help="dry run: sim device memory (default: room for all agents)"
    )
    add_backend_flags(p)
    add_ensure_flag(p)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("bench", help="benchmark routing modes against each other on the same examples")
    p.add_argument("--benchmark", action="append", required=True, choices=list_benchmarks(), help="repeatable")
    _bench_flags(p)
    p.add_argument(
        "--estimator_out",
        type=non_empty,
        help="save the trained estimator (the lp mode's, else the first mode's) as JSON after the run (default: none)",
    )
    p.set_defaults(func=cmd_bench)
    e = sub.add_parser("experiment", help="sweep λ_switch x VRAM (x horizon) and aggregate the runs")
    e.add_argument("--suite", choices=["code_math_sweep", "workflow_sweep", "full_sweep"], required=True)
    e.add_argument(
        "--lambda_switches",
        type=number_list(finite_nonneg_float),
        default="0,0.2,0.5,1",
        help="comma-separated λ_switch values (>= 0)",
    )
    e.add_argument("--gpu_vrams", type=number_list(vram_gb), default="8,24", help="comma-separated VRAM budgets (GB)")
    e.add_argument(
        "--horizons",
        type=number_list(horizon_depth),
        default=None,
        help=f"comma-separated horizon depths 0..{MAX_HORIZON} (full_sweep default 1,3)",
    )
    e.add_argument("--benchmark", action="append", choices=list_benchmarks(), help="override the suite's list")
    e.add_argument("--runs_dir", type=non_empty, help="root of runs/<timestamp>_<suite> (default settings.runs_dir)")
    _bench_flags(e)
    e.set_defaults(func=cmd_experiment, limit=6)


def bench_config(args: argparse.Namespace, settings: Settings, benchmarks: list[str], out: Path) -> BenchConfig:
    return BenchConfig(
        **settings.routing.params.model_dump(),
        horizon_depth=settings.routing.horizon_depth,
        benchmarks=benchmarks,
        compare=args.compare,
        limit=args.limit,
        seed=args.seed or 0,
        gpu_vram_gb=settings.gpu_vram_gb,
        mix=args.mix,
        code_eval=args.code_eval,
        judge=args.judge,
        judge_model=args.judge_model or settings.models.judge,
        planner_model=args.planner_model or settings.models.planner,
        dry_run=settings.backend == "sim",
        warm=list(args.warm),
        block_size=args.block_size,
        freeze_estimator=args.freeze_estimator,
        data_dir=args.data_dir,
        keep_alive=settings.keep_alive,
        max_concurrency=settings.max_concurrency,
        time_scale=settings.sim_time_scale,
        sim_device_gb=args.sim_device_gb,
        output_dir=str(out),
    )


def _estimator(args: argparse.Namespace) -> Estimator:
    if not args.estimator_in:
        return Estimator()
    estimator: Estimator = load_estimator(args.estimator_in, "--estimator_in")
    return estimator


@asynccontextmanager
async def _target(settings: Settings, ensure: bool = False) -> AsyncIterator[tuple[Backend | None, list[Agent]]]:
    """(backend, agents): None for the sim (each run builds a private one), else the runtime's GPU backend, whose
    catalog models must all be installed (pulled first with `ensure`) before anything starts."""
    if settings.backend == "sim":
        yield None, load_agents(settings.default_agents_file())
        return
    runtime = await open_runtime(settings)
    try:
        if runtime.backend_kind == "ollama":
            await ensure_installed(runtime.pool.default.backend, runtime.agents, pull=ensure)
        yield runtime.pool.default.backend, runtime.agents
    finally:
        await runtime.aclose()


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


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )


def cmd_bench(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.output_dir:
        out = check_output_dir(args.output_dir, "--output_dir")
    else:
        out = check_output_dir(settings.runs_dir, _runs_dir_field(args)) / f"{time.strftime('%Y%m%d-%H%M%S')}_bench"
    config = bench_config(args, settings, list(dict.fromkeys(args.benchmark)), out)
    if args.estimator_out:
        check_output_file(args.estimator_out, "--estimator_out")
    estimator = _estimator(args)
    result = asyncio.run(_bench(config, settings, estimator, args.ensure_models))
    print_report(result.report)
    if args.estimator_out:
        result.trained().save(args.estimator_out)
        console.print(f"[bold]estimator[/] {args.estimator_out}")
    console.print(f"[bold]outputs[/] {out}")
    return 0


async def _bench(config: BenchConfig, settings: Settings, estimator: Estimator, ensure: bool) -> BenchResult:
    async with _target(settings, ensure) as (backend, agents):
        with _progress() as bar:
            result = await run_bench(
                config,
                backend=backend or private_sim(config, agents),
                agents=agents,
                estimator=estimator,
                progress=BenchProgress(bar),
            )
    return result


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
    for m in report["per_mode"].values():
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


def _runs_dir_field(args: argparse.Namespace) -> str:
    return "--runs_dir" if getattr(args, "runs_dir", None) else "SWARM_RUNS_DIR"


def cmd_experiment(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    horizons = args.horizons or ([1, 3] if args.suite == "full_sweep" else [settings.routing.horizon_depth])
    base = bench_config(args, settings, list_benchmarks()[:1], Path("."))
    runs_dir = check_output_dir(args.runs_dir or settings.runs_dir, _runs_dir_field(args))
    spec = SweepSpec(
        suite=args.suite,
        lambda_switches=list(args.lambda_switches),
        gpu_vrams=list(args.gpu_vrams),
        horizons=list(horizons),
        benchmarks=list(dict.fromkeys(args.benchmark)) if args.benchmark else None,
        base=base,
        output_root=str(runs_dir),
    )
    root = check_output_dir(args.output_dir, "--output_dir") if args.output_dir else sweep_dir(spec)
    estimator = _estimator(args)
    result = asyncio.run(_experiment(spec, settings, estimator, root, args.ensure_models))
    for row in result["meta"]["rows"]:
        console.print(row)
    console.print(f"[bold]index[/] {root / 'index.json'}")
    return 0


async def _experiment(
    spec: SweepSpec, settings: Settings, estimator: Estimator, root: Path, ensure: bool
) -> dict[str, Any]:
    async with _target(settings, ensure) as (backend, agents):

        def backend_for(cfg: BenchConfig) -> Backend:
            return backend or private_sim(cfg, agents)

        def on_run(name: str, k: int, n: int) -> None:
            console.print(f"[bold]run {k + 1}/{n}[/] {name}")

        return await run_experiment(
            spec, backend_for=backend_for, agents=agents, estimator=estimator, root=root, on_run=on_run
        )
