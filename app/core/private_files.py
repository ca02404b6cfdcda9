"""The service's files are its own: directories 0700, files 0600 (tenants' prompts live in the database and runs)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


def private_dir(path: Path | str) -> Path:
    """Create `path` (and missing parents) owner-only; an existing directory we own is narrowed to 0700."""
    p = Path(path).expanduser()
    p.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        if p.stat().st_uid == os.geteuid():
            p.chmod(0o700)
    return p


def private_sqlite(database: Path | str) -> None:
    """Create the SQLite file 0600 before SQLite does (its WAL and SHM files take the database file's mode), and
    narrow an existing database and its sidecars to 0600."""
    db = Path(database).expanduser()
    if not db.parent.exists():
        private_dir(db.parent)
    fd = os.open(db, os.O_CREAT | os.O_RDWR, 0o600)
    os.close(fd)
    for path in (db, *(Path(f"{db}{s}") for s in SQLITE_SIDECARS)):
        with contextlib.suppress(OSError):
            if path.exists() and path.stat().st_uid == os.geteuid():
                path.chmod(0o600)
