"""`swarm` command line: run, bench, experiment, write-agents, serve, sim-ollama, export, import, db."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

from app.cli.helptext import Formatter
from app.core.errors import SwarmError

DEBUG_ENV = "SWARM_DEBUG"
# Model fields (BenchConfig, SweepSpec) whose flag is spelled differently.
FIELD_FLAGS = {"benchmarks": "--benchmark", "time_scale": "--time_scale", "output_root": "--runs_dir"}
_ARGUMENT = re.compile(r"^argument (\S+?)(?:/\S+)?: ")


class Parser(argparse.ArgumentParser):
    """argparse that also accepts dash spellings of underscore flags (--gpu-vram-gb == --gpu_vram_gb) without
    listing them in the help, shows defaults, and reports a bad flag as one line: `swarm <cmd>: error: --flag: ...`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def add_argument(self, *names: str, **kwargs: Any) -> argparse.Action:
        extra = [n.replace("_", "-") for n in names if n.startswith("--") and "_" in n]
        extra = [n for n in extra if n not in names]
        action = super().add_argument(*names, *extra, **kwargs)
        action.shown_option_strings = list(names)  # type: ignore[attr-defined]
        return action

    def error(self, message: str) -> NoReturn:
        message = _ARGUMENT.sub(r"\1: ", message)
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")


def build_parser() -> argparse.ArgumentParser:
    from app.cli import data, models, run, serve, sim

    parser = Parser(prog="swarm", description="Ollama Swarm Router: VRAM-aware routing across local models.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    run.register(sub)
    serve.register(sub)
    data.register(sub)
    sim.register(sub)
    models.register(sub)
    _register_optional(sub)
    return parser


def _register_optional(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    import importlib

    try:
        bench = importlib.import_module("app.cli.bench")
    except ImportError:  # the bench commands are wired when app.bench's runner exists
        return
    bench.register(sub)
    importlib.import_module("app.cli.calibrate").register(sub)


def one_line(text: str) -> str:
    return " ".join(str(text).split()) or "unknown error"


def _flag(loc: Sequence[int | str]) -> str:
    names = [str(p) for p in loc if isinstance(p, str)]
    if not names:
        return "input"
    return FIELD_FLAGS.get(names[-1], "--" + names[-1])


def describe(exc: BaseException) -> str | None:
    """One line for an error that escaped the commands' own checks; None = unexpected (a bug)."""
    import tomllib

    from pydantic import ValidationError
    from pydantic_settings import SettingsError
    from sqlalchemy.exc import SQLAlchemyError

    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        return f"{_flag(err.get('loc', ()))}: {msg}"
    if isinstance(exc, tomllib.TOMLDecodeError):
        return f"SWARM_CONFIG_FILE: {os.environ.get('SWARM_CONFIG_FILE', '')}: invalid TOML: {exc}"
    if isinstance(exc, SettingsError):
        m = re.search(r'field "([^"]+)" from source "(\w+)"', str(exc))
        if m is None:
            return f"settings: {exc}"
        field, source = m.groups()
        name = "SWARM_" + field.upper() if source.startswith("Env") else f"SWARM_CONFIG_FILE: {field}"
        cause = f": {exc.__cause__}" if exc.__cause__ is not None else ""
        return f'{name}: cannot parse the value (complex settings take JSON, e.g. ["a", "b"]){cause}'
    if isinstance(exc, UnicodeDecodeError):
        return "input file: not a UTF-8 text file"
    if isinstance(exc, OSError):
        where = exc.filename if exc.filename is not None else "file"
        return f"{where}: {exc.strerror or exc}"
    if isinstance(exc, SQLAlchemyError):
        from app.cli.common import db_error_line

        return f"database: {db_error_line(exc)}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a bad flag (already reported in one line)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    command = " ".join(str(c) for c in (args.command, getattr(args, "db_command", None)) if c)
    prefix = f"swarm {command}: error:"
    try:
        code = args.func(args)
    except SwarmError as exc:
        print(f"{prefix} {one_line(exc.message)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # last resort: never a traceback unless asked for
        if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
            raise
        known = describe(exc)
        if known is not None:
            print(f"{prefix} {one_line(known)}", file=sys.stderr)
        else:
            text = one_line(f"{type(exc).__name__}: {exc}")
            print(f"{prefix} {text} (set {DEBUG_ENV}=1 for the traceback)", file=sys.stderr)
        return 2
    return int(code or 0)


if __name__ == "__main__":
    raise SystemExit(main())
