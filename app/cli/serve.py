"""`swarm serve`: run the HTTP service with uvicorn."""

from __future__ import annotations

import argparse

from app.cli.common import add_backend_flags, settings_from


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="run the router's HTTP API")
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="port (default 8000)")
    p.add_argument("--log_level", default="info")
    add_backend_flags(p)
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.main import create_app

    settings = settings_from(args)
    over = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = settings.model_copy(update=over)
    app = create_app(settings)
    # Graceful shutdown: uvicorn stops accepting, then the lifespan cancels and records in-flight jobs.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level, timeout_graceful_shutdown=10)
    return 0
