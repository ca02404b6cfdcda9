"""`swarm` command line: run, bench, experiment, write-agents, serve, sim-ollama, export, import, db."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from app.core.errors import SwarmError


class Parser(argparse.ArgumentParser):
    """argparse that also accepts dash spellings of underscore flags (--gpu-vram-gb == --gpu_vram_gb)."""

    def add_argument(self, *names: str, **kwargs: object) -> argparse.Action:
        extra = [n.replace("_", "-") for n in names if n.startswith("--") and "_" in n]
        return super().add_argument(*names, *extra, **kwargs)  # type: ignore[arg-type]


def build_parser() -> argparse.ArgumentParser:
    from app.cli import data, run, serve, sim

    parser = Parser(prog="swarm", description="Ollama Swarm Router: VRAM-aware routing across local models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    run.register(sub)
    serve.register(sub)
    data.register(sub)
    sim.register(sub)
    _register_optional(sub)
    return parser


def _register_optional(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    import importlib

    try:
        bench = importlib.import_module("app.cli.bench")
    except ImportError:  # the bench commands are wired when app.bench's runner exists
        return
    bench.register(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except SwarmError as exc:
        print(f"swarm {args.command}: error: {exc.message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(code or 0)


if __name__ == "__main__":
    raise SystemExit(main())
