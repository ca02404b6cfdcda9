"""`swarm bench`, `swarm experiment` and `swarm write-agents`: benchmark runs, sweeps and agent-file presets."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
from app.cli.helptext import helped
from app.cli.knobs import add_compare_flag, add_knob_flags
from app.cli.view import (
    BenchProgress,
    SweepProgress,
    print_report,
    print_sweep,
    progress_bars,
    stderr_console,
    stdout_console,
)

if TYPE_CHECKING:  # the bench stack (numpy, the solvers, matplotlib) is imported by the commands, not by --help
    from app.backends.base import Backend
    from app.bench.experiments import SweepSpec
    from app.bench.runner import BenchConfig
    from app.core.settings import Settings
    from app.domain.models import Agent
    from app.routing import Estimator

# app.bench.registry.list_benchmarks() and app.bench.presets.PRESETS, spelled out so that `swarm --help` does not
# import the benchmarks (tests/cli/test_cli_help.py keeps them equal).
BENCHMARKS = ("workflowbench", "code_math_mix", "agentic_bench", "humaneval", "mbpp")
PRESETS = ("fast", "heavy", "auto_fast")
SUITES = ("code_math_sweep", "workflow_sweep", "full_sweep")
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
    p.add_argument("--mix", choices=["grouped", "interleave"], default="grouped", help="arrival order of the jobs")
    add_knob_flags(p)
    p.add_argument("--code_eval", action="store_true", help="run code answers against their tests (sandboxed)")
    p.add_argument("--judge", action="store_true", help="also score every answer with an LLM judge")
    p.add_argument("--judge_model", type=non_empty, help="judge model (default: the smallest agent)")
    p.add_argument(
        "--planner_model", type=non_empty, help="planner model for --compare llm (default: the smallest agent)"
    )
    p.add_argument(
        "--warm",
        type=non_empty,
        action="append",
        default=[],
        help="model loaded before every mode starts (repeatable; default: none)",
    )
    p.add_argument(
        "--block_size", type=positive_int, default=10, help="jobs per block; the mode order rotates per block"
    )
    p.add_argument("--freeze_estimator", action="store_true", help="no online learning during the run")
    p.add_argument(
        "--estimator_in", type=non_empty, help="start every mode from this estimator state (JSON; default: priors)"
    )
    p.add_argument("--output_dir", type=non_empty, help="output folder (default: <runs_dir>/<timestamp>_bench)")
    p.add_argument("--data_dir", type=non_empty, help="dataset folder of the mbpp JSONL (default: none)")
    p.add_argument(
        "--sim_device_gb", type=finite_positive_float, help="dry run: sim device memory (default: room for all agents)"
    )
    add_backend_flags(p)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("bench", help="benchmark routing modes against each other on the same examples")
    p.add_argument("--benchmark", action="append", required=True, choices=BENCHMARKS, help="benchmark (repeatable)")
    _bench_flags(p)
    p.set_defaults(func=cmd_bench)
    e = sub.add_parser("experiment", help="sweep λ_switch x VRAM (x horizon) and aggregate the runs")
    e.add_argument("--suite", choices=SUITES, required=True, help="which benchmarks the sweep runs")
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
        help=f"comma-separated horizon depths 0..{MAX_HORIZON} (default: 1,3 for full_sweep, else the settings')",
    )
    e.add_argument(
        "--benchmark", action="append", choices=BENCHMARKS, help="override the suite's list (default: the suite's)"
    )
    e.add_argument("--runs_dir", type=non_empty, help=helped("runs_dir", "root of <runs_dir>/<timestamp>_<suite>"))
    _bench_flags(e)
    e.set_defaults(func=cmd_experiment, limit=6)
    w = sub.add_parser("write-agents", help="write an agent catalog: fast | heavy | auto_fast (from /api/tags)")
    w.add_argument(
        "--preset",
        choices=PRESETS,
        required=True,
        help="fast / heavy: the shipped catalogs; auto_fast: the smallest installed models",
    )
    w.add_argument("--out", type=non_empty, required=True, help="output JSON path")
    w.add_argument("--k", type=positive_int, default=3, help="auto_fast: how many of the smallest installed models")
    add_backend_flags(w)
    w.set_defaults(func=cmd_write_agents)


def bench_config(args: argparse.Namespace, settings: Settings, benchmarks: list[str], out: Path) -> BenchConfig:
    from app.bench.runner import BenchConfig

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
    from app.routing import Estimator

    if not args.estimator_in:
        return Estimator()
    estimator: Estimator = load_estimator(args.estimator_in, "--estimator_in")
    return estimator


@asynccontextmanager
async def _target(settings: Settings) -> AsyncIterator[tuple[Backend | None, list[Agent]]]:
    """(backend, agents): None for the sim (each run builds a private one), else the runtime's GPU backend."""
    from app.execution.runtime import open_runtime
    from app.routing import load_agents

    if settings.backend == "sim":
        yield None, load_agents(settings.default_agents_file())
        return
    runtime = await open_runtime(settings)
    try:
        yield runtime.pool.default.backend, runtime.agents
    finally:
        await runtime.aclose()


def cmd_bench(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.output_dir:
        out = check_output_dir(args.output_dir, "--output_dir")
    else:
        out = check_output_dir(settings.runs_dir, _runs_dir_field(args)) / f"{time.strftime('%Y%m%d-%H%M%S')}_bench"
    config = bench_config(args, settings, list(dict.fromkeys(args.benchmark)), out)
    estimator = _estimator(args)
    report = asyncio.run(_bench(config, settings, estimator))
    print_report(report)
    stderr_console().print(f"[bold]outputs[/] {out}")
    return 0


async def _bench(config: BenchConfig, settings: Settings, estimator: Estimator) -> dict[str, Any]:
    from app.bench.runner import private_sim, run_bench

    async with _target(settings) as (backend, agents):
        with progress_bars() as bar:
            result = await run_bench(
                config,
                backend=backend or private_sim(config, agents),
                agents=agents,
                estimator=estimator,
                progress=BenchProgress(bar),
            )
    return result.report


def _runs_dir_field(args: argparse.Namespace) -> str:
    return "--runs_dir" if getattr(args, "runs_dir", None) else "SWARM_RUNS_DIR"


def cmd_experiment(args: argparse.Namespace) -> int:
    from app.bench.experiments import SweepSpec, sweep_dir

    settings = settings_from(args)
    horizons = args.horizons or ([1, 3] if args.suite == "full_sweep" else [settings.routing.horizon_depth])
    base = bench_config(args, settings, list(BENCHMARKS[:1]), Path("."))
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
    result = asyncio.run(_experiment(spec, settings, estimator, root))
    print_sweep(result, stdout_console())
    stderr_console().print(f"[bold]index[/] {root / 'index.json'}")
    return 0


async def _experiment(spec: SweepSpec, settings: Settings, estimator: Estimator, root: Path) -> dict[str, Any]:
    from app.bench.experiments import run_experiment
    from app.bench.runner import private_sim

    async with _target(settings) as (backend, agents):

        def backend_for(cfg: BenchConfig) -> Backend:
            return backend or private_sim(cfg, agents)

        with progress_bars() as bar:
            bars = SweepProgress(bar)
            result = await run_experiment(
                spec,
                backend_for=backend_for,
                agents=agents,
                estimator=estimator,
                root=root,
                progress=bars,
                on_run=bars.on_run,
            )
            bars.finish()
    return result


def cmd_write_agents(args: argparse.Namespace) -> int:
    from app.bench.presets import preset_catalog, write_catalog

    check_output_file(args.out, "--out")
    if args.preset != "auto_fast":
        path = write_catalog(preset_catalog(args.preset), args.out)
    else:
        settings = settings_from(args)
        path = asyncio.run(_auto_fast(settings, args.k, args.out))
    stderr_console().print(f"wrote {path}")
    return 0


async def _auto_fast(settings: Settings, k: int, out: str) -> Path:
    from app.backends.sim import SimBackend
    from app.bench.presets import auto_fast_catalog, write_catalog
    from app.routing import load_agents

    if settings.backend == "sim":
        agents = load_agents(settings.default_agents_file())
        return write_catalog(await auto_fast_catalog(SimBackend(agents, settings.gpu_vram_gb), k), out)
    async with _target(settings) as (backend, _):
        assert backend is not None
        return write_catalog(await auto_fast_catalog(backend, k), out)
