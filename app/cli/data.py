"""`swarm db upgrade`, `swarm export`, `swarm import`: the SQLite store and its JSONL form."""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli.common import (
    check_database,
    check_output_file,
    database_field,
    database_url,
    non_empty,
    read_text_file,
)
from app.cli.helptext import helped
from app.core.errors import ValidationFailed

if TYPE_CHECKING:  # SQLAlchemy is imported by the commands, not by `swarm --help`
    from app.storage.repo import Repo

DEFAULT_TENANT = "default"  # app.storage.repo.DEFAULT_TENANT (tests/cli/test_cli_help.py keeps them equal)


def _bounded(limit_name: str) -> Callable[[str], str]:
    """A non-empty string no longer than app.storage.export.<limit_name> (read when a value is given)."""

    def parse(text: str) -> str:
        from app.storage import export

        limit: int = getattr(export, limit_name)
        if not text.strip():
            raise argparse.ArgumentTypeError("must not be empty")
        if len(text) > limit:
            raise argparse.ArgumentTypeError(f"at most {limit} characters, got {len(text)}")
        return text

    parse.__name__ = "text"
    return parse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("db", help="database maintenance")
    dsub = p.add_subparsers(dest="db_command", required=True)
    up = dsub.add_parser("upgrade", help="apply Alembic migrations (creates the SQLite file)")
    up.add_argument("--database_url", type=database_url, help=helped("database_url"))
    up.set_defaults(func=cmd_upgrade)

    e = sub.add_parser("export", help="write telemetry events as JSONL")
    e.add_argument("--out", type=non_empty, required=True, help="output file ('-' = stdout)")
    e.add_argument("--tenant", type=non_empty, default=DEFAULT_TENANT, help="tenant name")
    e.add_argument("--job_id", type=_bounded("MAX_ID"), help="only this job's events (default: every job)")
    e.add_argument("--event_type", type=_bounded("MAX_EVENT_TYPE"), help="only this event type (default: all)")
    e.add_argument("--since", help="only events at or after this ISO timestamp or epoch seconds (default: all)")
    e.add_argument("--database_url", type=database_url, help=helped("database_url"))
    e.set_defaults(func=cmd_export)

    i = sub.add_parser("import", help="append telemetry events from a JSONL export (already stored ones are skipped)")
    i.add_argument("file", type=non_empty, help="a JSONL file written by `swarm export`")
    i.add_argument("--tenant", type=non_empty, default=None, help="re-own the events (default: as exported)")
    i.add_argument("--database_url", type=database_url, help=helped("database_url"))
    i.set_defaults(func=cmd_import)


def _database_url(args: argparse.Namespace) -> str:
    from app.core.settings import load_settings

    return str(args.database_url or load_settings().database_url)


def _repo(args: argparse.Namespace) -> Repo:
    from app.storage import db
    from app.storage.repo import Repo

    url = _database_url(args)
    check_database(url, database_field(args))
    return Repo(db.make_engine(url))


def _tenant_id(repo: Repo, name: str) -> str:
    tenant = repo.tenant_by_name(name)
    if tenant is None:
        raise ValidationFailed(f"--tenant: no tenant named {name!r}")
    return tenant.id


def cmd_upgrade(args: argparse.Namespace) -> int:
    url = _database_url(args)
    check_database(url, database_field(args))
    print(f"database at head: {url}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from app.storage.export import parse_since, write_jsonl

    since = parse_since(args.since, "--since")
    if args.out != "-":
        check_output_file(args.out, "--out")
    repo = _repo(args)
    repo.ensure_default_tenant()
    filters = {"job_id": args.job_id, "event_type": args.event_type, "since": since}
    tenant_id = _tenant_id(repo, args.tenant)
    if args.out == "-":
        try:
            n = write_jsonl(repo, sys.stdout, tenant_id, **filters)
            sys.stdout.flush()
        except BrokenPipeError:
            # The reader stopped early (`| head`): that is how pipes end, not an error. Point stdout at devnull so
            # the interpreter's final flush does not complain either.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 0
    else:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as fh:
            n = write_jsonl(repo, fh, tenant_id, **filters)
    print(f"exported {n} events to {args.out}", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from app.storage.export import import_events

    path = Path(args.file)
    text = read_text_file(path, "file")  # the whole file is read and checked before anything is written
    repo = _repo(args)
    repo.ensure_default_tenant()
    tenant_id = _tenant_id(repo, args.tenant) if args.tenant else None
    report = import_events(repo, io.StringIO(text), tenant_id)
    print(f"imported {report.imported}, skipped {report.skipped} duplicates from {path}")
    return 0
