"""`swarm train-router` (its parser is in cli/bench.py): preference data from a benchmark's prompts, a pref_router
model file (JSON)."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from app.backends.base import Backend
from app.backends.sim import SimBackend
from app.bench.registry import load_examples
from app.bench.simkeys import register_examples
from app.bench.train_router import collect, fit, write_outputs
from app.cli.common import check_output_dir, settings_from
from app.core.errors import ValidationFailed
from app.core.settings import Settings
from app.domain.models import Agent
from app.execution.llm import bind_chat
from app.execution.runtime import open_runtime
from app.routing import load_agents

console = Console(stderr=True)


def _pair(args: argparse.Namespace, agents: list[Agent]) -> tuple[str, str]:
    names = [a.name for a in agents]
    by_size = sorted(agents, key=lambda a: a.vram_gb)
    strong = args.strong_model or by_size[-1].name
    weak = args.weak_model or by_size[0].name
    for flag, name in (("--strong_model", strong), ("--weak_model", weak)):
        if name not in names:
            raise ValidationFailed(f"{flag}: {name!r} is not in the agent catalog ({', '.join(names)})")
    if strong == weak:
        raise ValidationFailed("--strong_model and --weak_model must differ")
    return strong, weak


def cmd_train_router(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    runs = Path(settings.runs_dir) / "router_training" / time.strftime("%Y%m%d-%H%M%S")
    out_dir = check_output_dir(args.out_dir or runs, "--out_dir")
    model_path = Path(args.out_model) if Path(args.out_model).is_absolute() else out_dir / args.out_model
    opts = {"data_dir": args.data_dir} if args.data_dir else {}
    examples = load_examples(list(dict.fromkeys(args.benchmark)), args.limit, args.seed or 0, **opts)
    summary = asyncio.run(_train(args, settings, examples, out_dir, model_path))
    console.print(f"[bold]router[/] {model_path}  pairs {summary['n_pairs']}  outcomes {summary['outcomes']}")
    return 0


async def _train(
    args: argparse.Namespace, settings: Settings, examples: list[Any], out_dir: Path, model_path: Path
) -> dict[str, Any]:
    if settings.backend == "sim":
        agents = load_agents(settings.default_agents_file())
        backend: Backend = SimBackend(agents, sum(a.vram_gb for a in agents), seed=settings.sim_seed)
        register_examples(backend, examples)  # type: ignore[arg-type]
        judge_backend: Backend = SimBackend(agents, sum(a.vram_gb for a in agents), seed=settings.sim_seed)
        return await _run(args, settings, agents, backend, judge_backend, examples, out_dir, model_path)
    runtime = await open_runtime(settings)
    try:
        backend = runtime.pool.default.backend
        return await _run(args, settings, runtime.agents, backend, backend, examples, out_dir, model_path)
    finally:
        await runtime.aclose()


async def _run(
    args: argparse.Namespace,
    settings: Settings,
    agents: list[Agent],
    backend: Backend,
    judge_backend: Backend,
    examples: list[Any],
    out_dir: Path,
    model_path: Path,
) -> dict[str, Any]:
    strong, weak = _pair(args, agents)
    judge_model = args.judge_model or settings.models.judge or weak
    chat = bind_chat(judge_backend, judge_model, settings.keep_alive)
    with console.status(f"{len(examples)} examples: answers from {strong} and {weak}, judged by {judge_model}"):
        prefs = await collect(backend, chat, examples, strong, weak, settings.keep_alive)
    meta = {"benchmarks": list(dict.fromkeys(args.benchmark)), "judge_model": judge_model, "seed": args.seed or 0}
    model = fit(prefs, args.embed, strong, weak, meta)
    write_outputs(out_dir, model_path, model, prefs)
    return dict(model["meta"])
