"""The usage write-ahead journal: every batched charge is appended to a per-process file before it is acknowledged,
so a kill -9 inside the batching window loses no tokens; the next start replays the journals of dead processes."""

from __future__ import annotations

import logging
import os
import secrets
from collections import Counter
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger("swarm.usage")
PREFIX = "usage-"
MAX_CHARGE = 2**53  # tokens in one charge: far beyond any real call or job, far within a 64-bit column


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class UsageJournal:
    """Append-only lines `<tenant id> <tokens>`: `usage-<pid>-<tag>.log` takes new charges; at a flush it is
    renamed `usage-<pid>-<tag>.<n>.flushing` and removed once its batch is in the database. A crash between that
    write and the removal charges the batch twice at the next start (never zero times)."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.dir, 0o700)
        # pid plus a random tag: a restarted container reuses its pid, never the tag
        self.owner = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.path = self.dir / f"{PREFIX}{self.owner}.log"
        self._seq = 0
        self._fd = self._open()

    def _open(self) -> int:
        return os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def append(self, tenant_id: str, tokens: int) -> None:
        # One write(2) per charge: in the page cache at once, so it survives the process being killed.
        os.write(self._fd, f"{tenant_id} {tokens}\n".encode())

    def rotate(self) -> Path | None:
        """Start a new file; the old one (the batch being flushed) is returned, to be removed once written."""
        os.close(self._fd)
        self._seq += 1
        sealed = self.dir / f"{PREFIX}{self.owner}.{self._seq}.flushing"
        try:
            os.replace(self.path, sealed)
        except FileNotFoundError:
            self._fd = self._open()
            return None
        self._fd = self._open()
        return sealed

    def close(self) -> None:
        os.close(self._fd)
        if self.path.exists() and self.path.stat().st_size == 0:
            self.path.unlink()

    def replay(self, write: Callable[[str, int], None]) -> int:
        """Charge the journals left by processes that are gone; returns the tokens replayed."""
        total = 0
        for path in sorted(self.dir.glob(f"{PREFIX}*")):
            owner = path.name.removeprefix(PREFIX).split(".")[0]
            pid, _, _ = owner.partition("-")
            if owner == self.owner or not pid.isdigit():
                continue
            if int(pid) != os.getpid() and _alive(int(pid)):
                continue
            for tenant_id, tokens in _read(path).items():
                try:
                    write(tenant_id, tokens)
                    total += tokens
                except Exception:  # one bad charge never blocks start-up: logged, and the rest still replayed
                    log.exception("could not replay %d tokens for tenant %s from %s", tokens, tenant_id, path.name)
            path.unlink()
        if total:
            log.warning("replayed %d tokens of usage left unwritten by a stopped process", total)
        return total


def _read(path: Path) -> Counter[str]:
    """A journal's charges per tenant; a line that is not `<tenant id> <tokens>` with tokens in 1..MAX_CHARGE is
    logged and skipped."""
    counts: Counter[str] = Counter()
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        tenant_id, _, text = line.rpartition(" ")
        if tenant_id and text.isascii() and text.isdigit() and len(text) <= 18 and 0 < int(text) <= MAX_CHARGE:
            counts[tenant_id] = min(MAX_CHARGE, counts[tenant_id] + int(text))
        elif line.strip():
            log.warning("skipped a bad usage journal line in %s: %r", path.name, line[:100])
    return counts
