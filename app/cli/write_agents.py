"""`swarm write-agents`: an agent catalog from a shipped preset, or from a backend's installed models (no fallback)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from rich.console import Console

from app.bench.presets import AUTO_PRESETS, PRESETS, auto_fast_catalog, preset_catalog, write_catalog
from app.cli.common import add_backend_flags, check_output_file, non_empty, positive_int, settings_from
from app.cli.models import connect, target_kind
from app.core.settings import Settings
from app.routing import load_agents

console = Console(stderr=True)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    w = sub.add_parser(
        "write-agents", help="write an agent catalog: fast | heavy (shipped) | auto | auto_fast (from /api/tags)"
    )
    w.add_argument(
        "--preset",
        choices=PRESETS,
        required=True,
        help="auto: every installed chat model of the backend; auto_fast: the --k smallest (both fail, exit 2, "
        "when the backend cannot be read; --backend auto means Ollama here)",
    )
    w.add_argument("--out", type=non_empty, required=True, help="output JSON path")
    w.add_argument(
        "--k", type=positive_int, default=3, help="auto_fast: how many of the smallest installed models (default 3)"
    )
    add_backend_flags(w)
    w.set_defaults(func=cmd_write_agents)


def cmd_write_agents(args: argparse.Namespace) -> int:
    check_output_file(args.out, "--out")
    if args.preset not in AUTO_PRESETS:
        path = write_catalog(preset_catalog(args.preset), args.out)
    else:
        settings = settings_from(args)
        k = args.k if args.preset == "auto_fast" else None
        path = asyncio.run(_auto_catalog(settings, k, args.out))
    console.print(f"wrote {path}")
    return 0


async def _auto_catalog(settings: Settings, k: int | None, out: str) -> Path:
    """From the named backend's installed models, never a fallback: an unreachable backend is exit 2."""
    agents = load_agents(settings.default_agents_file()) if target_kind(settings) != "ollama" else []
    async with connect(settings, agents) as backend:
        console.print(f"installed models of {backend.name}")
        return write_catalog(await auto_fast_catalog(backend, k), out)
