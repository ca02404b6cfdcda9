"""`swarm db upgrade`, `swarm export`, `swarm import`: the SQLite store and its JSONL form."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.core.errors import ValidationFailed
from app.core.settings import load_settings
from app.storage import db
from app.storage.export import import_jsonl, parse_since, write_jsonl
from app.storage.repo import DEFAULT_TENANT, Repo


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("db", help="database maintenance")
    dsub = p.add_subparsers(dest="db_command", required=True)
    up = dsub.add_parser("upgrade", help="apply Alembic migrations (creates the SQLite file)")
    up.add_argument("--database_url", "--database-url")
    up.set_defaults(func=cmd_upgrade)

    e = sub.add_parser("export", help="write telemetry events as JSONL")
    e.add_argument("--out", required=True, help="output file ('-' = stdout)")
    e.add_argument("--tenant", default=DEFAULT_TENANT, help="tenant name (default: default)")
    e.add_argument("--job_id")
    e.add_argument("--event_type")
    e.add_argument("--since", help="ISO timestamp or epoch seconds")
    e.add_argument("--database_url")
    e.set_defaults(func=cmd_export)

    i = sub.add_parser("import", help="append telemetry events from a JSONL export")
    i.add_argument("file")
    i.add_argument("--tenant", default=None, help="re-own the events (default: as exported)")
    i.add_argument("--database_url")
    i.set_defaults(func=cmd_import)


def _repo(args: argparse.Namespace) -> Repo:
    url = args.database_url or load_settings().database_url
    engine = db.make_engine(url)
    db.upgrade(engine)
    return Repo(engine)


def _tenant_id(repo: Repo, name: str) -> str:
    tenant = repo.tenant_by_name(name)
    if tenant is None:
        raise ValidationFailed(f"--tenant: no tenant named {name!r}")
    return tenant.id


def cmd_upgrade(args: argparse.Namespace) -> int:
    url = args.database_url or load_settings().database_url
    db.upgrade(db.make_engine(url))
    print(f"database at head: {url}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    repo = _repo(args)
    repo.ensure_default_tenant()
    filters = {"job_id": args.job_id, "event_type": args.event_type, "since": parse_since(args.since, "--since")}
    tenant_id = _tenant_id(repo, args.tenant)
    if args.out == "-":
        n = write_jsonl(repo, sys.stdout, tenant_id, **filters)
    else:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as fh:
            n = write_jsonl(repo, fh, tenant_id, **filters)
    print(f"exported {n} events to {args.out}", file=sys.stderr)
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    repo = _repo(args)
    repo.ensure_default_tenant()
    path = Path(args.file)
    if not path.is_file():
        raise ValidationFailed(f"file not found: {path}")
    tenant_id = _tenant_id(repo, args.tenant) if args.tenant else None
    with path.open(encoding="utf-8") as fh:
        n = import_jsonl(repo, fh, tenant_id)
    print(f"imported {n} events from {path}")
    return 0
