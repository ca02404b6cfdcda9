"""`swarm bench`, `swarm experiment` and `swarm write-agents`: benchmark runs, sweeps and agent-file presets."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli.common import (
    MAX_HORIZON,
    add_backend_flags,
    check_database,
    check_output_dir,
    check_output_file,
    database_field,
    finite_nonneg_float,
    finite_positive_float,
    horizon_depth,
    int_range,
    load_estimator,
    non_empty,
    number_list,
    positive_int,
    safe_name,
    settings_from,
)
from app.cli.helptext import helped
from app.cli.knobs import add_compare_flag, add_knob_flags
from app.cli.models import add_ensure_flag
from app.cli.view import (
    BenchProgress,
    print_report,
    progress_bars,
    stderr_console,
)
from app.execution.cpu import INLINE

if TYPE_CHECKING:  # the bench stack (numpy, the solvers, matplotlib) is imported by the commands, not by --help
    from app.backends.base import Backend
    from app.bench.runner import BenchConfig, BenchResult
    from app.core.settings import Settings
    from app.domain.models import Agent
    from app.routing import Estimator
    from app.storage.repo import Repo

# app.bench.registry.list_benchmarks() and app.bench.presets.PRESETS, spelled out so that `swarm --help` does not
# import the benchmarks (tests/cli/test_cli_help.py keeps them equal).
BENCHMARKS = ("workflowbench", "code_math_mix", "agentic_bench", "humaneval", "mbpp", "mmlu", "mt_bench")
PRESETS = ("fast", "heavy", "auto", "auto_fast")
SUITES = ("code_math_sweep", "workflow_sweep", "full_sweep", "tau_sweep")
MAX_LIMIT = 500  # BenchConfig.limit
MAX_VRAM_GB = 4096.0  # BenchConfig.gpu_vram_gb


def unit_float(text: str) -> float:
    value = finite_nonneg_float(text)
    if value > 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text!r}")
    return value


def check_router_model(path: str | None) -> str | None:
    """Read the router file now: a bad one is one line before any mode runs (the original failed mid-run)."""
    if path is not None:
        from app.routing.pref_router import load_model

        load_model(path)
    return path


def safe_tag(text: str) -> str:
    if not text.strip() or len(text) > 64 or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(f"a label of 1-64 characters without spaces, got {text!r}")
    return text


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
        "--estimator_tag",
        type=safe_tag,
        default="static",
        help="label of the estimator state in reports and Pareto data (default: static)",
    )
    p.add_argument(
        "--planner_timeout_s", type=finite_positive_float, help="timeout of each planner call in s (default: 120)"
    )
    p.add_argument(
        "--estimator_in", type=non_empty, help="start every mode from this estimator state (JSON; default: priors)"
    )
    p.add_argument("--output_dir", type=non_empty, help="output folder (default: <runs_dir>/<timestamp>_bench)")
    p.add_argument(
        "--data_dir", type=non_empty, help="dataset folder of the mbpp, mmlu and mt_bench files (default: none)"
    )
    p.add_argument(
        "--mtbench_judge", action="store_true", help="judge mt_bench answers pairwise across modes (positions swapped)"
    )
    p.add_argument(
        "--mtbench_judge_model",
        type=non_empty,
        help="pairwise judge model (default: --judge_model, else the smallest agent)",
    )
    p.add_argument(
        "--router_model",
        type=non_empty,
        help="pref_router: trained router file from swarm train-router (default: none)",
    )
    p.add_argument(
        "--router_tau",
        type=unit_float,
        default=0.5,
        help="pref_router: strong model when P(strong) >= tau (default: 0.5)",
    )
    p.add_argument(
        "--sim_device_gb", type=finite_positive_float, help="dry run: sim device memory (default: room for all agents)"
    )
    add_backend_flags(p)
    add_ensure_flag(p)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("bench", help="benchmark routing modes against each other on the same examples")
    p.add_argument("--benchmark", action="append", required=True, choices=BENCHMARKS, help="benchmark (repeatable)")
    _bench_flags(p)
    p.add_argument(
        "--estimator_out",
        type=non_empty,
        help="save the trained estimator (the lp mode's, else the first mode's) as JSON after the run (default: none)",
    )
    p.set_defaults(func=cmd_bench)
    e = sub.add_parser("experiment", help="sweep λ_switch x VRAM (x horizon) and aggregate the runs")
    e.add_argument(
        "--suite",
        choices=SUITES,
        help="a named grid (tau_sweep: pref_router's τ, needs --router_model); without it the --benchmark list "
        "(default code_math_mix) is swept",
    )
    e.add_argument("--exp_id", type=safe_name, help="experiment folder name under --runs_dir (default: a timestamp)")
    e.add_argument(
        "--lambda_switches",
        type=number_list(finite_nonneg_float),
        help="comma-separated λ_switch values (>= 0; default 0,0.2,0.5,1, tau_sweep: --lambda_switch)",
    )
    e.add_argument(
        "--gpu_vrams", type=number_list(vram_gb), help="comma-separated VRAM budgets in GB (default 8,24; tau_sweep: G)"
    )
    e.add_argument(
        "--router_taus", type=number_list(unit_float), default="0,0.25,0.5,0.75,1", help="tau_sweep: τ values"
    )
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
    e.set_defaults(func=_cmd_experiment, limit=6)
    _register_train_router(sub)
    w = sub.add_parser("write-agents", help="write an agent catalog: fast | heavy | auto | auto_fast (from /api/tags)")
    w.add_argument(
        "--preset",
        choices=PRESETS,
        required=True,
        help="fast / heavy: the shipped catalogs; auto: every installed chat model of the backend; auto_fast: the --k "
        "smallest (auto and auto_fast fail, exit 2, when the backend cannot be read; --backend auto means Ollama here)",
    )
    w.add_argument("--out", type=non_empty, required=True, help="output JSON path")
    w.add_argument("--k", type=positive_int, default=3, help="auto_fast: how many of the smallest installed models")
    add_backend_flags(w)
    w.set_defaults(func=cmd_write_agents)


def _register_train_router(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    t = sub.add_parser("train-router", help="train pref_router: strong vs weak answers judged pairwise")
    t.add_argument("--benchmark", action="append", required=True, choices=BENCHMARKS, help="benchmark (repeatable)")
    t.add_argument("--data_dir", type=non_empty, help="dataset folder (mbpp, mmlu, mt_bench files)")
    t.add_argument("--limit", type=int_range(1, 500), default=200, help="examples per benchmark")
    t.add_argument("--strong_model", type=non_empty, help="default: the catalog's largest model")
    t.add_argument("--weak_model", type=non_empty, help="default: the catalog's smallest model")
    t.add_argument("--judge_model", type=non_empty, help="default: SWARM_MODELS__JUDGE, else the weak model")
    t.add_argument("--embed", choices=["tfidf", "sbert"], default="tfidf", help="features: TF-IDF or MiniLM")
    t.add_argument("--out_dir", type=non_empty, help="default: <runs_dir>/router_training/<timestamp>")
    t.add_argument("--out_model", type=non_empty, default="router.json", help="model file (relative to --out_dir)")
    add_backend_flags(t)
    t.set_defaults(func=_cmd_train_router)


def _cmd_train_router(args: argparse.Namespace) -> int:
    from app.cli.train_router import cmd_train_router  # scikit-learn and the bench stack load only when it runs

    return cmd_train_router(args)


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
        estimator_tag=args.estimator_tag,
        mtbench_judge=args.mtbench_judge,
        router_model=check_router_model(args.router_model),
        router_tau=args.router_tau,
        mtbench_judge_model=args.mtbench_judge_model,
        planner_timeout_s=args.planner_timeout_s or 120.0,
        data_dir=args.data_dir,
        keep_alive=settings.keep_alive,
        max_concurrency=settings.max_concurrency,
        time_scale=settings.sim_time_scale,
        sim_device_gb=args.sim_device_gb,
        output_dir=str(out),
    )


def estimator_from(args: argparse.Namespace) -> Estimator:
    from app.routing import Estimator

    if not args.estimator_in:
        return Estimator()
    estimator: Estimator = load_estimator(args.estimator_in, "--estimator_in")
    return estimator


@asynccontextmanager
async def bench_target(
    settings: Settings, ensure: bool = False
) -> AsyncIterator[tuple[Backend | None, list[Agent], Repo]]:
    """(backend, agents, repo): None for the sim (each run builds a private one), else the runtime's GPU backend,
    whose catalog models must all be installed (pulled first with `ensure`) before anything starts; the repo is the
    database every telemetry event also lands in."""
    from app.cli.models import ensure_installed
    from app.execution.runtime import open_runtime
    from app.routing import load_agents
    from app.storage import db
    from app.storage.repo import Repo

    if settings.backend == "sim":
        engine = db.make_engine(settings.database_url)
        try:
            await asyncio.to_thread(db.upgrade, engine)
            repo = Repo(engine)
            await asyncio.to_thread(repo.ensure_default_tenant)
            yield None, load_agents(settings.default_agents_file()), repo
        finally:
            engine.dispose()
        return
    runtime = await open_runtime(settings)
    try:
        if runtime.backend_kind == "ollama":
            await ensure_installed(runtime.pool.default.backend, runtime.agents, pull=ensure)
        await asyncio.to_thread(runtime.repo.ensure_default_tenant)
        yield runtime.pool.default.backend, runtime.agents, runtime.repo
    finally:
        await runtime.aclose()


def cmd_bench(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if args.output_dir:
        out = check_output_dir(args.output_dir, "--output_dir")
    else:
        out = check_output_dir(settings.runs_dir, runs_dir_field(args)) / f"{time.strftime('%Y%m%d-%H%M%S')}_bench"
    config = bench_config(args, settings, list(dict.fromkeys(args.benchmark)), out)
    if args.estimator_out:
        check_output_file(args.estimator_out, "--estimator_out")
    estimator = estimator_from(args)
    check_database(settings.database_url, database_field(args))
    INLINE.set(True)  # a CLI run owns its process: solves and the report run in order, on its own loop
    result = asyncio.run(_bench(config, settings, estimator, args.ensure_models))
    print_report(result.report)
    stderr_console().print(f"[bold]outputs[/] {out}")
    if args.estimator_out:
        result.trained().save(args.estimator_out)
        stderr_console().print(f"[bold]estimator[/] {args.estimator_out}")
    return 0


async def _bench(config: BenchConfig, settings: Settings, estimator: Estimator, ensure: bool) -> BenchResult:
    from app.bench.runner import private_sim, run_bench

    async with bench_target(settings, ensure) as (backend, agents, repo):
        with progress_bars() as bar:
            result = await run_bench(
                config,
                backend=backend or private_sim(config, agents),
                agents=agents,
                estimator=estimator,
                progress=BenchProgress(bar),
                repo=repo,
            )
    return result


def runs_dir_field(args: argparse.Namespace) -> str:
    return "--runs_dir" if getattr(args, "runs_dir", None) else "SWARM_RUNS_DIR"


def _cmd_experiment(args: argparse.Namespace) -> int:
    from app.cli.experiment import cmd_experiment  # the sweep's machinery loads only when a sweep runs

    return cmd_experiment(args)


def cmd_write_agents(args: argparse.Namespace) -> int:
    from app.bench.presets import AUTO_PRESETS, preset_catalog, write_catalog

    check_output_file(args.out, "--out")
    if args.preset not in AUTO_PRESETS:
        path = write_catalog(preset_catalog(args.preset), args.out)
    else:
        settings = settings_from(args)
        k = args.k if args.preset == "auto_fast" else None
        path = asyncio.run(_auto_catalog(settings, k, args.out))
    stderr_console().print(f"wrote {path}")
    return 0


async def _auto_catalog(settings: Settings, k: int | None, out: str) -> Path:
    """From the named backend's installed models, never a fallback: an unreachable backend is exit 2."""
    from app.bench.presets import auto_fast_catalog, write_catalog
    from app.cli.models import connect, target_kind
    from app.routing import load_agents

    agents = load_agents(settings.default_agents_file()) if target_kind(settings) != "ollama" else []
    async with connect(settings, agents) as backend:
        stderr_console().print(f"installed models of {backend.name}")
        return write_catalog(await auto_fast_catalog(backend, k), out)
