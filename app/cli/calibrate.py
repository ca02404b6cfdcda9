"""`swarm calibrate`: measure the installed models of a backend and write an agents file (measured vs prior)."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import TYPE_CHECKING, Any

from app.cli.common import add_backend_flags, check_agents_file, check_output_file, int_range, non_empty, settings_from
from app.cli.view import stderr_console
from app.core.errors import ValidationFailed

if TYPE_CHECKING:  # the measuring stack is imported by the command, not by `swarm --help`
    from app.backends.base import Backend
    from app.bench.calibrate import CalibrationConfig
    from app.core.settings import Settings
    from app.domain.models import Agent


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "calibrate", help="measure the installed models (VRAM, load time, speed, quality) into an agents file"
    )
    p.add_argument("--out", type=non_empty, required=True, help="agents file to write (JSON)")
    p.add_argument(
        "--models", type=non_empty, help="comma-separated installed models to measure (default: every chat model)"
    )
    p.add_argument(
        "--items", type=int_range(1, 100), default=8, help="scored benchmark items per task type (default 8)"
    )
    p.add_argument("--loads", type=int_range(1, 20), default=3, help="cold loads per model; median taken (default 3)")
    p.add_argument(
        "--code_eval", action="store_true", help="execute code answers in the sandbox to score code (default off)"
    )
    add_backend_flags(p)
    p.set_defaults(func=cmd_calibrate)


def cmd_calibrate(args: argparse.Namespace) -> int:
    from app.bench.calibrate import CalibrationConfig
    from app.bench.presets import write_catalog

    out = check_output_file(args.out, "--out")
    settings = settings_from(args)
    check_agents_file(settings)
    cfg = CalibrationConfig(
        loads=args.loads,
        items=args.items,
        seed=args.seed or 0,
        code_eval=args.code_eval,
        keep_alive=settings.keep_alive,
    )
    catalog = asyncio.run(_calibrate(settings, cfg, args.models))
    write_catalog(catalog, out)
    _summary(catalog)
    stderr_console().print(f"wrote {out}")
    return 0


async def _calibrate(settings: Settings, cfg: CalibrationConfig, models: str | None) -> dict[str, Any]:
    from app.bench.calibrate import calibrate
    from app.cli.models import connect, target_kind
    from app.routing import load_agents

    catalog = load_agents(settings.default_agents_file())
    agents = catalog if target_kind(settings) != "ollama" else []
    async with connect(settings, agents) as backend:
        priors = await priors_for(backend, catalog, models)

        console = stderr_console()

        def progress(model: str, what: str) -> None:
            console.print(f"{model}: {what}")

        return await calibrate(backend, priors, cfg, progress)


async def priors_for(backend: Backend, catalog: list[Agent], models: str | None) -> list[Agent]:
    """The installed chat models to measure, each with its prior: the catalog's entry, else one derived from size."""
    from app.bench.presets import is_embedding_model
    from app.execution.catalog import canonical
    from app.routing.agents import parse_agents
    from app.routing.derived import agent_from_tag

    tags = {canonical(str(t.get("name") or t.get("model"))): t for t in await backend.installed()}
    named = {canonical(a.name): a for a in catalog}
    if models:
        wanted = [m.strip() for m in models.split(",") if m.strip()]
        missing = [m for m in wanted if canonical(m) not in tags]
        if missing:
            raise ValidationFailed(f"--models: {missing[0]!r} is not installed on {backend.name}")
        keys = [canonical(m) for m in wanted]
    else:
        keys = [k for k, t in tags.items() if not is_embedding_model(str(t.get("name") or k))]
    if not keys:
        raise ValidationFailed(f"no installed chat models on {backend.name} to calibrate")
    out = []
    for key in keys:
        prior = named.get(key)
        out.append(prior if prior is not None else parse_agents([agent_from_tag(tags[key])], source="derived")[0])
    return out


def _summary(catalog: dict[str, Any]) -> None:
    console = stderr_console()
    for name, rec in catalog["calibration"]["models"].items():
        caps = {
            t: f"{c['value']:.2f}{'' if c['source'] == 'measured' else '*'}" for t, c in rec["capabilities"].items()
        }
        console.print(
            f"{name}: VRAM {rec['vram_gb']['value']} GB, load {rec['load_time_ms']['value']} ms, "
            f"decode {rec['tokens_per_s']['value']} tok/s, quality {json.dumps(caps)} (* = prior)"
        )
