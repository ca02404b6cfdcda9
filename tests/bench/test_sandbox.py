"""Hostile code is stopped, scored 0, in bounded time, and leaves nothing running."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from app.bench import sandbox
from app.bench.sandbox import SandboxLimits, network_isolation, run_python
from app.bench.scoring import score_code
from app.bench.types import CodeSpec

FAST = SandboxLimits(timeout_s=3.0, cpu_s=2)
SPEC = CodeSpec(entry_point="f", tests=[([2], 4)])
HOSTILE = {
    "infinite_loop": "def f(x):\n    while True:\n        pass",
    "sleep_forever": "import time\ndef f(x):\n    time.sleep(1000)",
    "ten_gb": "def f(x):\n    blob = bytearray(10 * 1024**3)\n    return 2 * x",
    "socket": "import socket\ndef f(x):\n    socket.create_connection(('1.1.1.1', 80), timeout=1)\n    return 2 * x",
    "raw_socket": "import _socket\ndef f(x):\n    _socket.socket().connect(('1.1.1.1', 53))\n    return 2 * x",
    "fork_bomb": "import os\ndef f(x):\n    while True:\n        os.fork()",
    "huge_file": "def f(x):\n    with open('big.bin', 'wb') as fh:\n        fh.write(b'0' * 2**30)\n    return 2 * x",
    "flood_stdout": "def f(x):\n    while True:\n        print('y' * 4096)",
    "exit_early": "import sys\ndef f(x):\n    sys.exit(0)",
}


def _leftovers(dirs: list[str] | None = None) -> list[str]:
    """Processes still naming a sandbox dir (only `dirs`, this test's own, when given: other test runs on the
    same machine have theirs)."""
    found = []
    needles = [d.encode() for d in dirs] if dirs is not None else [b"swarm_sbx_"]
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if any(n in cmd for n in needles):
            found.append(proc.name)
    return found


def _record_dirs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    made: list[str] = []
    real = sandbox.tempfile.mkdtemp

    def mkdtemp(*args: object, **kwargs: object) -> str:
        path = real(*args, **kwargs)  # type: ignore[call-overload]
        made.append(str(path))
        return str(path)

    monkeypatch.setattr(sandbox.tempfile, "mkdtemp", mkdtemp)
    return made


@pytest.mark.parametrize("use_unshare", [True, False])
def test_hostile_code_scores_zero_quickly(use_unshare: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if not use_unshare:
        # No unshare: the sandbox must still find real isolation (bubblewrap) or refuse.
        monkeypatch.setattr(sandbox, "_unshare_prefix", lambda: [])
        if not sandbox.network_isolation().startswith("bwrap"):
            pytest.skip("no bubblewrap here: without unshare the sandbox refuses (tests/bench/test_isolation.py)")
    made = _record_dirs(monkeypatch)
    for name, code in HOSTILE.items():
        started = time.monotonic()
        result = score_code(code, SPEC, code_eval=True, limits=FAST)
        assert result.score == 0.0, (name, result)
        assert time.monotonic() - started < 10, name
    assert score_code("def f(x):\n    return 2 * x", SPEC, code_eval=True, limits=FAST).score == 1.0
    deadline = time.monotonic() + 5  # killed at the limit; a dying pid namespace takes a moment to be reaped
    while _leftovers(made) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert made and _leftovers(made) == []


def test_results_say_why() -> None:
    loop = run_python("while True: pass", SandboxLimits(timeout_s=1.5, cpu_s=20))
    assert loop.timed_out and loop.killed_reason == "wall_timeout" and not loop.ok
    cpu = run_python("while True: pass", SandboxLimits(timeout_s=8, cpu_s=1))
    assert cpu.killed_reason == "cpu_time_limit" and cpu.duration_s < 6
    mem = run_python("x = bytearray(10 * 1024**3)")
    assert mem.killed_reason == "memory_limit"
    chatty = run_python("print('z' * 100000)", SandboxLimits(output_cap=1000))
    assert chatty.ok and len(chatty.stdout) == 1000
    ok = run_python("import math\nprint(math.factorial(5))")
    assert ok.ok and ok.stdout.strip() == "120" and ok.exit_code == 0


def test_network_barrier_is_reported_and_active() -> None:
    mode = network_isolation()
    assert mode in ("bwrap+socket_preamble", "unshare+socket_preamble")  # a real barrier (unsafe is opt-in)
    res = run_python("import socket\nsocket.socket()")
    assert not res.ok and "network access is disabled" in res.stderr
    assert res.isolation == mode


@pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop only applies when running as root")
def test_root_runs_code_as_nobody_without_write_access_outside_its_dir() -> None:
    res = run_python("import os\nprint(os.getuid())\nopen('mine.txt', 'w').write('ok')\nopen('/etc/x', 'w')")
    # bubblewrap shows no /etc at all; root + unshare leaves it read-only to nobody
    assert res.stdout.strip() == "65534" and ("PermissionError" in res.stderr or "FileNotFoundError" in res.stderr)
    assert not Path("/etc/x").exists()
