"""`swarm experiment`: a grid of benchmark runs (λ_switch x G x horizon, or pref_router's τ) and its meta report."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from app.backends.base import Backend
from app.bench.config import BenchConfig
from app.bench.experiments import SweepSpec, run_experiment, sweep_dir
from app.bench.registry import list_benchmarks
from app.bench.runner import private_sim
from app.cli.bench import bench_config, bench_target, estimator_from, runs_dir_field
from app.cli.common import check_database, check_output_dir, database_field, settings_from
from app.cli.view import SweepProgress, print_sweep, progress_bars, stderr_console, stdout_console
from app.core.errors import ValidationFailed
from app.core.settings import Settings
from app.routing import Estimator


def cmd_experiment(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    horizons = args.horizons or ([1, 3] if args.suite == "full_sweep" else [settings.routing.horizon_depth])
    if args.suite is None and not args.benchmark:
        args.benchmark = ["code_math_mix"]
    base = bench_config(args, settings, list_benchmarks()[:1], Path("."))
    runs_dir = check_output_dir(args.runs_dir or settings.runs_dir, runs_dir_field(args))
    tau = args.suite == "tau_sweep"
    if tau and not args.router_model:  # before any folder is created
        raise ValidationFailed("--router_model: the tau_sweep suite needs a trained router (swarm train-router)")
    spec = SweepSpec(
        suite=args.suite,
        lambda_switches=list(args.lambda_switches or ([base.lambda_switch] if tau else [0.0, 0.2, 0.5, 1.0])),
        gpu_vrams=list(args.gpu_vrams or ([base.gpu_vram_gb] if tau else [8.0, 24.0])),
        horizons=list(horizons),
        router_taus=list(args.router_taus),
        benchmarks=list(dict.fromkeys(args.benchmark)) if args.benchmark else None,
        exp_id=args.exp_id,
        base=base,
        output_root=str(runs_dir),
    )
    root = check_output_dir(args.output_dir, "--output_dir") if args.output_dir else sweep_dir(spec)
    if args.exp_id and args.output_dir is None and (root / "index.json").exists():
        raise ValidationFailed(f"--exp_id: {root} already holds an experiment; pick another id")
    estimator = estimator_from(args)
    check_database(settings.database_url, database_field(args))
    result = asyncio.run(_experiment(spec, settings, estimator, root, args.ensure_models))
    print_sweep(result, stdout_console())
    stderr_console().print(f"[bold]index[/] {root / 'index.json'}")
    return 0


async def _experiment(
    spec: SweepSpec, settings: Settings, estimator: Estimator, root: Path, ensure: bool
) -> dict[str, Any]:
    async with bench_target(settings, ensure) as (backend, agents, repo):

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
                repo=repo,
            )
            bars.finish()
    return result
