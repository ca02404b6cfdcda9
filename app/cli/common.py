"""Flags shared by several subcommands and the Settings they produce."""

from __future__ import annotations

import argparse
import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli.helptext import helped
from app.cli.knobs import GPU_KNOB, add_knob_flags, knob_overrides
from app.core.errors import ValidationFailed

if TYPE_CHECKING:  # `swarm --help` must not import pydantic-settings, numpy or the solvers
    from app.core.settings import Settings

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
MAX_HORIZON = 32  # the same bound as Settings.routing.horizon_depth and BenchConfig.horizon_depth
_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]+")
MAX_NAME = 48  # run ids and job-id prefixes end up in 64-character job ids

# ---------------------------------------------------------------------------------------------------------------
# argparse `type=` functions: a bad value fails at parse time with one line naming the flag.


def _int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def _float(text: str, lo: float | None = None, *, strict: bool = False) -> float:
    """A finite float; with `lo`, at least lo (strict: greater than lo)."""
    bound = "" if lo is None else f" {'>' if strict else '>='} {lo:g}"
    try:
        value = float(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a finite number{bound}, got {text!r}") from None
    if not math.isfinite(value) or (lo is not None and (value <= lo if strict else value < lo)):
        raise argparse.ArgumentTypeError(f"must be a finite number{bound}, got {text!r}")
    return value


def int_range(lo: int, hi: int | None = None) -> Callable[[str], int]:
    """An integer lo..hi (hi None = no upper bound)."""

    def parse(text: str) -> int:
        value = _int(text)
        if value < lo or (hi is not None and value > hi):
            bound = f"between {lo} and {hi}" if hi is not None else f">= {lo}"
            raise argparse.ArgumentTypeError(f"must be an integer {bound}, got {text!r}")
        return value

    parse.__name__ = "integer"
    return parse


positive_int = int_range(1)
nonneg_int = int_range(0)
horizon_depth = int_range(0, MAX_HORIZON)


def finite_float(text: str) -> float:
    return _float(text)


def finite_positive_float(text: str) -> float:
    return _float(text, 0.0, strict=True)


def finite_nonneg_float(text: str) -> float:
    return _float(text, 0.0)


def port(text: str) -> int:
    value = _int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number between 1 and 65535, got {text!r}")
    return value


def host(text: str) -> str:
    if not text.strip() or any(c.isspace() for c in text):
        raise argparse.ArgumentTypeError(f"must be a host name or IP address, got {text!r}")
    return text


def non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def safe_name(text: str) -> str:
    """A single path component: letters, digits, '.', '_', '-' only; not '.' or '..'."""
    if not _SAFE_NAME.fullmatch(text) or text in (".", ".."):
        raise argparse.ArgumentTypeError(
            f"use only letters, digits, '.', '_' and '-' (no spaces or path separators), got {text!r}"
        )
    if len(text) > MAX_NAME:
        raise argparse.ArgumentTypeError(f"at most {MAX_NAME} characters, got {len(text)}")
    return text


def number_list(item: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    """A non-empty comma-separated list, each item checked by `item` (one of the functions above)."""

    def parse(text: str) -> list[Any]:
        parts = [x.strip() for x in text.split(",")]
        if not any(parts):
            raise argparse.ArgumentTypeError("expected a comma-separated list of numbers, got an empty value")
        if not all(parts):
            raise argparse.ArgumentTypeError(f"empty item in the comma-separated list {text!r}")
        out = []
        for part in parts:
            out.append(item(part))  # its error names the bad item
        return out

    parse.__name__ = "list"
    return parse


def database_url(text: str) -> str:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(text)
    except ArgumentError:
        raise argparse.ArgumentTypeError(
            f"must be an SQLAlchemy URL like sqlite:///./data/swarm.db, got {text!r}"
        ) from None
    return text


# ---------------------------------------------------------------------------------------------------------------
# Checks on paths and resources, run before any work starts (so a failure never leaves half a run behind).


def _first_existing(path: Path) -> Path:
    p = path.absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_output_dir(value: str | Path, flag: str) -> Path:
    """A folder that exists or can be created: no part of the path is a file, and it is writable."""
    if not str(value).strip():
        raise ValidationFailed(f"{flag}: must not be empty")
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise ValidationFailed(f"{flag}: not a directory: {path}")
    anchor = _first_existing(path)
    if not anchor.is_dir():
        raise ValidationFailed(f"{flag}: {anchor} is a file, cannot create {path}")
    if not os.access(anchor, os.W_OK | os.X_OK):
        raise ValidationFailed(f"{flag}: permission denied: {anchor}")
    return path


def check_output_file(value: str | Path, flag: str, *, create_parents: bool = True) -> Path:
    """A file path that can be written: not empty, not a directory, its folder exists (or can be created)."""
    if not str(value).strip():
        raise ValidationFailed(f"{flag}: must not be empty")
    path = Path(value)
    if path.is_dir():
        raise ValidationFailed(f"{flag}: is a directory: {path}")
    if path.exists() and not os.access(path, os.W_OK):
        raise ValidationFailed(f"{flag}: permission denied: {path}")
    parent = path.parent
    if not create_parents and not parent.is_dir():
        raise ValidationFailed(f"{flag}: directory does not exist: {parent}")
    check_output_dir(parent, flag)
    return path


def read_text_file(value: str | Path, flag: str) -> str:
    """The UTF-8 text of a file; every failure is one line naming the flag and the path."""
    path = Path(value)
    if not str(value).strip():
        raise ValidationFailed(f"{flag}: must not be empty")
    if not path.exists():
        raise ValidationFailed(f"{flag}: file not found: {path}")
    if not path.is_file():
        raise ValidationFailed(f"{flag}: not a regular file: {path}")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValidationFailed(f"{flag}: {path}: not a UTF-8 text file") from None
    except OSError as exc:
        raise ValidationFailed(f"{flag}: {path}: {exc.strerror or exc}") from None


def load_estimator(value: str | Path, flag: str, *, frozen: bool = False) -> Any:
    """Estimator state from a JSON file; a malformed file is one line naming the flag."""
    from app.routing import Estimator

    text = read_text_file(value, flag)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"{flag}: {value}: invalid JSON at line {exc.lineno}: {exc.msg}") from None
    if not isinstance(data, dict):
        raise ValidationFailed(f"{flag}: {value}: expected a JSON object (a saved estimator state)")
    try:
        return Estimator.from_dict(data, frozen=frozen)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValidationFailed(f"{flag}: {value}: invalid estimator state: {exc}") from None


def check_database(url: str, field: str) -> None:
    """Open and migrate the database now, so a bad URL or an unreachable server is one line before any work."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    from app.storage import db

    try:
        shown = make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        raise ValidationFailed(
            f"{field}: must be an SQLAlchemy URL like sqlite:///./data/swarm.db, got {url!r}"
        ) from None
    try:
        engine = db.make_engine(url)
    except NoSuchModuleError as exc:
        raise ValidationFailed(f"{field}: unsupported database URL {shown}: {exc}") from None
    except ImportError as exc:
        raise ValidationFailed(f"{field}: database driver not installed for {shown}: {exc}") from None
    except OSError as exc:
        raise ValidationFailed(
            f"{field}: cannot create the database folder for {shown}: {exc.strerror or exc}"
        ) from None
    try:
        db.upgrade(engine)
    except SQLAlchemyError as exc:
        raise ValidationFailed(f"{field}: cannot open {shown}: {db_error_line(exc)}") from None
    finally:
        engine.dispose()


def db_error_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return (text.splitlines() or [type(exc).__name__])[0]


def database_field(args: argparse.Namespace) -> str:
    return "--database_url" if getattr(args, "database_url", None) else "SWARM_DATABASE_URL"


def check_agents_file(settings: Settings, flag: str = "--agents_file") -> None:
    """Load the agent catalog the settings select (explicit file, else the backend's preset)."""
    from app.core.errors import AgentFileError
    from app.routing import load_agents

    try:
        load_agents(settings.default_agents_file())
    except AgentFileError as exc:
        field = flag if settings.agents_file is not None else "agents file"
        raise ValidationFailed(f"{field}: {exc.message}") from None


def add_backend_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", choices=["auto", "ollama", "sim", "local"], help=helped("backend"))
    p.add_argument("--dry_run", action="store_true", help=helped("dry_run"))
    p.add_argument("--ollama_base_url", help=helped("ollama_base_url"))
    p.add_argument("--agents_file", help=helped("agents_file"))
    add_knob_flags(p, (GPU_KNOB,))
    p.add_argument("--time_scale", type=finite_nonneg_float, help=helped("time_scale"))
    p.add_argument("--seed", type=nonneg_int, default=0, help=helped("seed"))
    p.add_argument("--database_url", type=database_url, help=helped("database_url"))


def add_routing_flags(p: argparse.ArgumentParser) -> None:
    from app.cli.knobs import add_knob_flags, add_mode_flag

    add_mode_flag(p)
    add_knob_flags(p)
    p.add_argument("--planner_model", help=helped("planner_model"))
    p.add_argument("--decomposer_model", help=helped("decomposer_model"))


def settings_from(args: argparse.Namespace) -> Settings:
    """Flags override environment and config file; validation errors name the setting."""
    from app.core.settings import load_settings

    over: dict[str, Any] = {}
    if getattr(args, "dry_run", False):
        over["backend"] = "sim"
    elif getattr(args, "backend", None):
        over["backend"] = args.backend
    for flag, key in (
        ("ollama_base_url", "ollama_base_url"),
        ("agents_file", "agents_file"),
        ("time_scale", "sim_time_scale"),
        ("database_url", "database_url"),
        ("runs_dir", "runs_dir"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            over[key] = value
    if getattr(args, "seed", None) is not None:
        over["sim_seed"] = args.seed
    if getattr(args, GPU_KNOB, None) == 0:  # --gpu_vram_gb 0: detect (Settings does)
        over["gpu_vram_gb"] = 0.0
        args = argparse.Namespace(**{**vars(args), GPU_KNOB: None})
    knobs = knob_overrides(args)
    if knobs.gpu_vram_gb is not None:
        over["gpu_vram_gb"] = knobs.gpu_vram_gb
    base = load_settings(**over)
    routing = base.routing.overridden(knobs).model_dump()
    if getattr(args, "routing", None):
        routing["mode"] = args.routing
    models = base.models.model_dump()
    for role in ("planner", "decomposer", "judge"):
        if getattr(args, f"{role}_model", None):
            models[role] = getattr(args, f"{role}_model")
    return load_settings(**{**over, "routing": routing, "models": models})
