"""Service files are private: the SQLite database with its WAL/SHM 0600, model cache and run outputs 0700."""

from __future__ import annotations

import stat
from pathlib import Path

from fastapi.testclient import TestClient

from app.backends.sim import SimBackend
from app.core.settings import Settings
from app.main import create_app
from app.routing import load_agents

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_database_and_folders_are_owner_only(tmp_path: Path) -> None:
    root = tmp_path / "svc"
    settings = Settings(
        backend="sim",
        database_url=f"sqlite:///{root / 'db' / 'swarm.db'}",
        data_dir=root / "data",
        runs_dir=root / "runs",
        agents_file=CONFIGS / "agents_heavy.json",
    )
    sim = SimBackend(load_agents(CONFIGS / "agents_heavy.json"), 8.0)
    body = {"subtasks": [{"id": "a", "task_type": "code", "description": "write hello"}]}
    with TestClient(create_app(settings, backend=sim)) as c:
        assert c.post("/jobs", params={"wait": "true"}, json=body).status_code == 200
        db = root / "db" / "swarm.db"
        files = [db, *(p for p in (Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists())]
        assert len(files) == 3  # WAL mode: both sidecars exist while the service runs
        assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}
        for folder in (root / "db", root / "data", root / "runs"):
            assert _mode(folder) == 0o700, folder


def test_existing_database_is_narrowed(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    db.write_bytes(b"")
    db.chmod(0o644)
    from app.storage import db as storage

    storage.make_engine(f"sqlite:///{db}").dispose()
    assert _mode(db) == 0o600
