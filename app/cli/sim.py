"""`swarm sim-ollama`: the simulated GPU served as an Ollama-compatible HTTP server (native /api/* and /v1)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli.common import (
    LOG_LEVELS,
    check_agents_file,
    finite_nonneg_float,
    finite_positive_float,
    host,
    non_empty,
    nonneg_int,
    port,
    positive_int,
)
from app.cli.helptext import helped
from app.core.errors import ValidationFailed

if TYPE_CHECKING:  # the web stack and the simulator are imported by the command, not by `swarm --help`
    from fastapi import FastAPI

    from app.backends.base import Backend
    from app.domain.models import Agent


def build_sim_app(backend: Backend) -> FastAPI:
    """A plain Ollama look-alike around `backend`: no tenants, no routing, no database."""
    from fastapi import FastAPI

    from app.api.gateway import Gateway
    from app.api.routes import anthropic, ollama, openai

    app = FastAPI(title="Ollama Swarm Router: simulated Ollama", version="0.1.0", docs_url=None, redoc_url=None)
    app.state.gateway = Gateway(backend)
    stats = getattr(backend, "stats", None)
    if stats is not None:

        @app.get("/sim/stats", include_in_schema=False)
        async def sim_stats() -> dict[str, object]:
            """Loads, evictions and events so far (not an Ollama endpoint: for benchmarks and tests)."""
            result: dict[str, object] = stats()
            return result

    app.include_router(ollama.router)
    app.include_router(openai.router)
    app.include_router(anthropic.router)
    return app


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("sim-ollama", help="serve the simulated GPU as an Ollama-compatible server")
    p.add_argument("--host", type=host, default="127.0.0.1", help="bind address")
    p.add_argument("--port", type=port, default=11435, help="port 1..65535")
    p.add_argument(
        "--agents_file", type=non_empty, help="agent registry JSON (default: the sim preset, agents_heavy.json)"
    )
    p.add_argument(
        "--gpu_vram_gb", type=finite_positive_float, help=helped("gpu_vram_gb", "simulated VRAM capacity G in GB")
    )
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the simulated outputs")
    p.add_argument("--time_scale", type=finite_nonneg_float, default=0.0, help="0 = answer instantly, 1 = realistic")
    p.add_argument(
        "--num_parallel",
        type=positive_int,
        default=4,
        help="requests one model serves at once, like OLLAMA_NUM_PARALLEL (default: 4)",
    )
    p.add_argument(
        "--installed",
        type=non_empty,
        help="comma-separated catalog models installed at start; the rest must be pulled (default: all)",
    )
    p.add_argument("--log_level", type=str.lower, choices=LOG_LEVELS, default="warning", help=helped("log_level"))
    p.set_defaults(func=cmd_sim_ollama)


def cmd_sim_ollama(args: argparse.Namespace) -> int:
    import uvicorn

    from app.backends.sim import SimBackend
    from app.core.settings import load_settings
    from app.routing import load_agents

    over: dict[str, object] = {"backend": "sim"}
    if args.agents_file:
        over["agents_file"] = Path(args.agents_file)
    if args.gpu_vram_gb is not None:
        over["gpu_vram_gb"] = args.gpu_vram_gb
    settings = load_settings(**over)
    check_agents_file(settings)
    agents = load_agents(settings.default_agents_file())
    installed = _installed(args.installed, agents)
    sim = SimBackend(
        agents,
        settings.gpu_vram_gb,
        seed=args.seed,
        time_scale=args.time_scale,
        num_parallel=args.num_parallel,
        installed=installed,
    )
    print(f"simulated Ollama on http://{args.host}:{args.port} (G={settings.gpu_vram_gb:g} GB, {len(agents)} models)")
    uvicorn.run(build_sim_app(sim), host=args.host, port=args.port, log_level=args.log_level)
    return 0


def _installed(text: str | None, agents: list[Agent]) -> list[str] | None:
    """The --installed subset, checked against the catalog."""
    if text is None:
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    known = {a.name for a in agents}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValidationFailed(f"--installed: {unknown[0]!r} is not in the catalog ({', '.join(sorted(known))})")
    return names
