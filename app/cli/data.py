"""`swarm db upgrade`, `swarm export`, `swarm import`: the SQLite store and its JSONL form."""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Callable
from pathlib import Path

from app.cli.common import (
    check_database,
    check_output_file,
    database_field,
    database_url,
    non_empty,
    read_text_file,
)
from app.core.errors import ValidationFailed
from app.core.settings import load_settings
from app.storage import db
from app.storage.export import MAX_EVENT_TYPE, MAX_ID, import_events, parse_since, write_jsonl
from app.storage.repo import DEFAULT_TENANT, Repo


def _bounded(limit: int) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if not text.strip():
            raise argparse.ArgumentTypeError("must not be empty")
        if len(text) > limit:
            raise argparse.ArgumentTypeError(f"at most {limit} characters, got {len(text)}")
        return text

    return parse


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("db", help="database maintenance")
    dsub = p.add_subparsers(dest="db_command", required=True)
    up = dsub.add_parser("upgrade", help="apply Alembic migrations (creates the SQLite file)")
    up.add_argument("--database_url", type=database_url, help="SQLAlchemy URL (default SWARM_DATABASE_URL)")
    up.set_defaults(func=cmd_upgrade)

    e = sub.add_parser("export", help="write telemetry events as JSONL")
    e.add_argument("--out", type=non_empty, required=True, help="output file ('-' = stdout)")
    e.add_argument("--tenant", type=non_empty, default=DEFAULT_TENANT, help="tenant name (default: default)")
    e.add_argument("--job_id", type=_bounded(MAX_ID))
    e.add_argument("--event_type", type=_bounded(MAX_EVENT_TYPE))
    e.add_argument("--since", help="ISO timestamp or epoch seconds")
    e.add_argument("--database_url", type=database_url)
    e.set_defaults(func=cmd_export)

    i = sub.add_parser("import", help="append telemetry events from a JSONL export (already stored ones are skipped)")
    i.add_argument("file", type=non_empty)
    i.add_argument("--tenant", type=non_empty, default=None, help="re-own the events (default: as exported)")
    i.add_argument("--database_url", type=database_url)
    i.set_defaults(func=cmd_import)


def _database_url(args: argparse.Namespace) -> str:
    return str(args.database_url or load_settings().database_url)


def _repo(args: argparse.Namespace) -> Repo:
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
    path = Path(args.file)
    text = read_text_file(path, "file")  # the whole file is read and checked before anything is written
    repo = _repo(args)
    repo.ensure_default_tenant()
    tenant_id = _tenant_id(repo, args.tenant) if args.tenant else None
    report = import_events(repo, io.StringIO(text), tenant_id)
    print(f"imported {report.imported}, skipped {report.skipped} duplicates from {path}")
    return 0
