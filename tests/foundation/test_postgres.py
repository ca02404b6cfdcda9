"""The same migrations and repository on PostgreSQL: a throwaway server started from the local binaries."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import app.storage.models  # noqa: F401
from app.storage import db
from app.storage.models import Job, TelemetryEvent
from app.storage.repo import Repo


def _pg_bin() -> Path | None:
    for cand in (shutil.which("initdb"), *sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))):
        if cand:
            return Path(cand).resolve().parent
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    url = os.environ.get("SWARM_TEST_POSTGRES_URL")
    if url:
        yield url
        return
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("no PostgreSQL server binaries at hand (set SWARM_TEST_POSTGRES_URL to test one)")
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
    tmp = Path(tempfile.mkdtemp(prefix="swarm-pg-"))
    if as_user:
        shutil.chown(tmp, "postgres")
    data, port = tmp / "data", _free_port()
    subprocess.run(
        [*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "swarm", "--auth=trust"],
        check=True,
        capture_output=True,
    )
    opts = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-w", "start", "-l", str(tmp / "log")],
        check=True,
        capture_output=True,
    )
    try:
        for _ in range(50):
            if subprocess.run([str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)]).returncode == 0:
                break
            time.sleep(0.1)
        yield f"postgresql+psycopg://swarm@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(tmp, ignore_errors=True)


def test_postgres_migrations_and_repo(pg_url: str) -> None:
    engine = db.make_engine(pg_url)
    db.upgrade(engine)
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
    repo = Repo(engine)
    tenant = repo.ensure_default_tenant()
    repo.create_job(Job(id="pg1", tenant_id=tenant.id, status="running", spec={"k": [1, 2]}))
    repo.add_events([TelemetryEvent(tenant_id=tenant.id, job_id="pg1", ts=1.5, event_type="x", payload={"a": 1})])
    assert repo.mark_unfinished_interrupted("restart") == 1
    job = repo.get_job(tenant.id, "pg1")
    assert job is not None and job.status == "interrupted" and job.spec == {"k": [1, 2]}
    assert [e.payload for e in repo.iter_events(tenant.id)] == [{"a": 1}]
    engine.dispose()
