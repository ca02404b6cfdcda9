"""`swarm export --out -` ends quietly when its reader stops early; every benchmarks/*.py answers --help."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from app.storage import db
from app.storage.models import TelemetryEvent
from app.storage.repo import Repo

ROOT = Path(__file__).resolve().parents[2]
SWARM = Path(sys.executable).with_name("swarm")


def test_export_to_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'swarm.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    repo = Repo(engine)
    tenant = repo.ensure_default_tenant()
    # far more than a pipe buffer (64 KiB), so the writer is still writing when `head` exits
    repo.add_events([TelemetryEvent(tenant_id=tenant.id, event_type="x", payload={"pad": "y" * 200, "i": i})
                     for i in range(3000)])  # fmt: skip
    engine.dispose()
    cmd = f"set -o pipefail; '{SWARM}' export --out - --database_url '{url}' | head -n 2"
    proc = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 2
    assert "Broken pipe" not in proc.stderr and "Traceback" not in proc.stderr and "Exception" not in proc.stderr


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "benchmarks").glob("*.py")))
def test_benchmark_scripts_print_usage_on_help(script: str) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:") and "Routing latency, ms" not in proc.stdout
