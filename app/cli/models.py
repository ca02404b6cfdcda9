"""`swarm models`: catalog vs installed vs loaded on a backend, `--ensure` pulls what is missing (also the
`--ensure_models` step of run and bench); and the one way the CLI connects to a named backend without fallback."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from app.cli.common import add_backend_flags, check_agents_file, settings_from
from app.cli.view import stderr_console, stdout_console
from app.core.errors import BackendError, ValidationFailed

if TYPE_CHECKING:  # rich, httpx and the execution stack are imported by the commands, not by `swarm --help`
    from rich.progress import Progress, TaskID

    from app.backends.base import Backend
    from app.core.settings import Settings
    from app.domain.models import Agent
    from app.execution.catalog import Reconciled
    from app.execution.pull import PullStep


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("models", help="catalog vs installed vs loaded models on a backend; --ensure pulls")
    p.add_argument("--ensure", action="store_true", help="pull the catalog models the backend lacks (default off)")
    p.add_argument("--json", action="store_true", help="print the listing as JSON on stdout (default: a table)")
    add_backend_flags(p)
    p.set_defaults(func=cmd_models)


def add_ensure_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--ensure_models",
        action="store_true",
        help="pull the catalog models the backend lacks before starting (default off: missing models are an error)",
    )


def target_kind(settings: Settings) -> str:
    """The backend a command names: `auto` means Ollama here (no silent fall back to the simulator)."""
    return "ollama" if settings.backend == "auto" else settings.backend


@asynccontextmanager
async def connect(settings: Settings, agents: list[Agent]) -> AsyncIterator[Backend]:
    """The named backend, answering; an unreachable one is one line naming its URL (exit 2)."""
    from app.execution.runtime import build_backend, http_client

    kind = target_kind(settings)
    http = http_client()
    backend: Backend | None = None
    try:
        backend = build_backend(settings, kind, http, agents)
        try:
            await backend.ping()
            await backend.installed()
        except BackendError as exc:
            where = settings.ollama_base_url if kind == "ollama" else kind
            raise ValidationFailed(f"cannot read the installed models of {where}: {exc.message}") from None
        yield backend
    finally:
        if backend is not None:
            await backend.aclose()
        await http.aclose()


class PullBars:
    """A rich download bar per model being pulled (Ollama's total/completed bytes per layer)."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def __call__(self, step: PullStep) -> None:
        task = self.tasks.get(step.model)
        if task is None:
            task = self.tasks[step.model] = self.progress.add_task(step.model, total=None)
        desc = f"{step.model}: {step.status[:40]}"
        if step.total:
            self.progress.update(task, description=desc, total=step.total, completed=step.completed or 0)
        else:
            self.progress.update(task, description=desc)


async def ensure_installed(backend: Backend, agents: list[Agent], *, pull: bool, strict: bool = True) -> Reconciled:
    """Before a run or bench: pull what is missing (pull=True); else fail naming the missing models (strict), or
    warn and leave them out (an error only when none is installed)."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    from app.execution.catalog import CatalogWatch, pull_hint
    from app.execution.pull import ensure_models

    console = stderr_console()
    watch = CatalogWatch()
    if pull:
        bar = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                       console=console)  # fmt: skip
        with bar:
            pulled, rec = await ensure_models(backend, agents, watch, PullBars(bar))
        if pulled:
            console.print(f"pulled {', '.join(pulled)}")
        return rec
    await watch.refresh(backend)
    rec = watch.reconcile(backend, agents)
    if rec.missing and not strict and rec.routable:
        console.print(f"[yellow]not installed, not routed:[/] {', '.join(rec.missing)} ({pull_hint(rec.missing[0])})")
    elif rec.missing:
        raise ValidationFailed(
            f"catalog model(s) not installed on {backend.name}: {', '.join(rec.missing)}; "
            f"{pull_hint(rec.missing[0])}, or pass --ensure_models"
        )
    return rec


def cmd_models(args: argparse.Namespace) -> int:
    from app.routing import load_agents

    settings = settings_from(args)
    check_agents_file(settings)
    agents = load_agents(settings.default_agents_file())
    listing = asyncio.run(_models(settings, agents, args.ensure))
    if args.json:
        print(json.dumps(listing, indent=2))
    else:
        print_listing(listing)
    return 0


async def _models(settings: Settings, agents: list[Agent], ensure: bool) -> dict[str, Any]:
    async with connect(settings, agents) as backend:
        if ensure:
            await ensure_installed(backend, agents, pull=True)
        return await listing_of(backend, agents)


async def listing_of(backend: Backend, agents: list[Agent]) -> dict[str, Any]:
    from app.execution.catalog import CatalogWatch

    installed = {str(t.get("name") or t.get("model")): t for t in await backend.installed()}
    loaded = {m.name: m for m in await backend.loaded()}
    watch = CatalogWatch()
    await watch.refresh(backend)
    rec = watch.reconcile(backend, agents)
    catalog = {a.name for a in agents}
    rows = []
    for name in [a.name for a in agents] + sorted(n for n in installed if n not in catalog and n not in rec.missing):
        tag = next((t for n, t in installed.items() if n in (name, f"{name}:latest")), None)
        live = next((m for n, m in loaded.items() if n in (name, f"{name}:latest")), None)
        rows.append(
            {
                "model": name,
                "in_catalog": name in catalog,
                "installed": tag is not None,
                "size_gb": round(float(tag.get("size") or 0) / 1e9, 3) if tag else None,
                "loaded": live is not None,
                "size_vram_gb": round(live.size_vram / 1e9, 3) if live else None,
            }
        )
    return {"backend": backend.name, "models": rows, "missing": rec.missing}


def print_listing(listing: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=f"models on {listing['backend']}")
    for col in ("model", "catalog", "installed", "size GB", "loaded", "VRAM GB"):
        table.add_column(col)
    for r in listing["models"]:
        yes = {True: "yes", False: "[red]no[/]" if r["in_catalog"] else "no"}
        size = "-" if r["size_gb"] is None else f"{r['size_gb']:.2f}"
        vram = "-" if r["size_vram_gb"] is None else f"{r['size_vram_gb']:.2f}"
        table.add_row(r["model"], "yes" if r["in_catalog"] else "-", yes[r["installed"]], size,
                      "yes" if r["loaded"] else "-", vram)  # fmt: skip
    stdout_console().print(table)
    if listing["missing"]:
        stderr_console().print(f"missing: {', '.join(listing['missing'])} (swarm models --ensure pulls them)")
