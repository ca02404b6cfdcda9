"""`swarm serve`: run the HTTP service with uvicorn."""

from __future__ import annotations

import argparse

from app.cli.common import (
    LOG_LEVELS,
    add_backend_flags,
    check_agents_file,
    check_database,
    database_field,
    host,
    port,
    settings_from,
)
from app.cli.helptext import helped


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="run the router's HTTP API")
    p.add_argument("--host", type=host, default=None, help=helped("host", "bind address"))
    p.add_argument("--port", type=port, default=None, help=helped("port", "port 1..65535"))
    p.add_argument("--log_level", type=str.lower, choices=LOG_LEVELS, default="info", help=helped("log_level"))
    add_backend_flags(p)
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from app.api.hygiene import uvicorn_options
    from app.main import create_app

    settings = settings_from(args)
    over = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = settings.model_copy(update=over)
    # Check what the start-up would trip over, so a bad setting is one line instead of a lifespan traceback.
    check_agents_file(settings)
    check_database(settings.database_url, database_field(args))
    app = create_app(settings)
    # Graceful shutdown: uvicorn stops accepting, then the lifespan cancels and records in-flight jobs.
    # Access lines are logged at info; above that uvicorn would still format each line's fields per request.
    access_log = args.log_level in ("trace", "debug", "info")
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level=args.log_level,
        access_log=access_log,
        timeout_graceful_shutdown=10,
        **uvicorn_options(settings),  # head timeout, keep-alive, connection cap (api/hygiene.py)
    )
    return 0
