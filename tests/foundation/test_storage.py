"""Storage: migrations build exactly the models' schema, SQLite pragmas, repo behaviour, JSONL round trip."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

import app.storage.models  # noqa: F401
from app.core.errors import ValidationFailed
from app.storage import db
from app.storage.export import import_jsonl, write_jsonl
from app.storage.models import Job, TelemetryEvent
from app.storage.repo import Repo


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'sub' / 'x.db'}")
    db.upgrade(engine)
    return Repo(engine)


def test_migrated_schema_matches_models(repo: Repo) -> None:
    with repo.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
    assert diff == []
    tables = set(inspect(repo.engine).get_table_names())
    assert {"tenants", "jobs", "subtasks", "plan_steps", "bench_runs", "telemetry_events"} <= tables


def test_upgrade_is_idempotent(repo: Repo) -> None:
    db.upgrade(repo.engine)
    with repo.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() is not None


def test_sqlite_wal_and_foreign_keys(repo: Repo) -> None:
    with repo.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    with pytest.raises(Exception, match="FOREIGN KEY"):
        repo.create_job(Job(id="j1", tenant_id="no-such-tenant"))


def test_tenant_key_is_hashed(repo: Repo) -> None:
    tenant, key = repo.create_tenant("acme")
    assert key not in (tenant.key_hash or "")
    assert repo.tenant_by_key(key) is not None and repo.tenant_by_key(key).name == "acme"  # type: ignore[union-attr]
    assert repo.tenant_by_key(key + "x") is None


def test_unfinished_jobs_marked_interrupted(repo: Repo) -> None:
    t = repo.ensure_default_tenant()
    repo.create_job(Job(id="a", tenant_id=t.id, status="running"))
    repo.create_job(Job(id="b", tenant_id=t.id, status="succeeded"))
    assert repo.mark_unfinished_interrupted("restart") == 1
    assert repo.get_job(t.id, "a").status == "interrupted"  # type: ignore[union-attr]
    assert repo.get_job(t.id, "b").status == "succeeded"  # type: ignore[union-attr]


def test_jsonl_round_trip_loses_nothing(repo: Repo, tmp_path: Path) -> None:
    t = repo.ensure_default_tenant()
    events = [
        TelemetryEvent(
            tenant_id=t.id,
            job_id=f"j{i % 3}",
            ts=1000.0 + i,
            event_type=f"e{i % 2}",
            payload={"i": i, "nested": {"x": [1, 2.5, "s"]}, "unicode": "héllo"},
        )
        for i in range(1200)  # > one export batch
    ]
    repo.add_events(events)
    out = io.StringIO()
    assert write_jsonl(repo, out, t.id) == 1200
    other = Repo(db.make_engine(f"sqlite:///{tmp_path / 'other.db'}"))
    db.upgrade(other.engine)
    other.ensure_default_tenant()
    assert import_jsonl(other, io.StringIO(out.getvalue())) == 1200
    again = io.StringIO()
    write_jsonl(other, again, t.id)
    strip = lambda s: [line.split(',"job_id"', 1)[1] for line in s.splitlines()]  # noqa: E731 - ids differ
    assert strip(again.getvalue()) == strip(out.getvalue())


def test_export_filters(repo: Repo) -> None:
    t = repo.ensure_default_tenant()
    repo.add_events(
        [
            TelemetryEvent(tenant_id=t.id, job_id=f"j{i}", ts=float(i), event_type="x" if i < 5 else "y", payload={})
            for i in range(10)
        ]
    )
    assert len(list(repo.iter_events(t.id, job_id="j3"))) == 1
    assert len(list(repo.iter_events(t.id, event_type="y"))) == 5
    assert [e.ts for e in repo.iter_events(t.id, since=8.0)] == [8.0, 9.0]


def test_import_rejects_bad_file_and_stores_nothing(repo: Repo) -> None:
    repo.ensure_default_tenant()
    lines = ['{"ts": 1, "event_type": "a", "payload": {}}', "{not json"]
    with pytest.raises(ValidationFailed, match="line 2"):
        import_jsonl(repo, lines)
    assert list(repo.iter_events("default")) == []
