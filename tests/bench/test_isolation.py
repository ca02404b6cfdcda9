"""The sandbox refuses to run code_eval without real isolation (unless the operator opts into unsafe mode), and in
every mode: a private temp dir removed afterwards, a cap on bytes written, no process left behind (even a setsid
daemon), a cleared environment, and none of the service's files or processes reachable."""

from __future__ import annotations

import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.bench import isolation, sandbox
from app.bench.isolation import SandboxUnavailable
from app.bench.sandbox import SandboxLimits, run_python
from app.bench.scoring import score_code
from app.bench.types import CodeSpec
from app.bench.unshare_root import unshare_root_works

SPEC = CodeSpec(entry_point="f", tests=[([2], 4)])
FAST = SandboxLimits(timeout_s=3.0, cpu_s=2)


@pytest.fixture
def no_real_isolation(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """What a non-root container under Docker's default seccomp profile looks like: no bwrap, no namespaces."""
    monkeypatch.setattr(isolation, "bwrap_works", lambda: False)
    monkeypatch.setattr(sandbox, "_unshare_prefix", lambda: [])
    monkeypatch.delenv("SWARM_SANDBOX", raising=False)
    isolation._state.pop("mode", None)
    yield
    isolation._state.pop("mode", None)


def test_refuses_without_real_isolation(no_real_isolation: None) -> None:
    with pytest.raises(SandboxUnavailable) as err:
        run_python("print(1)")
    assert "no real isolation" in err.value.message and "SWARM_SANDBOX=unsafe" in err.value.message
    with pytest.raises(SandboxUnavailable):
        score_code("def f(x):\n    return 2 * x", SPEC, code_eval=True, limits=FAST)


def test_unsafe_mode_is_an_explicit_opt_in(no_real_isolation: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_SANDBOX", "unsafe")
    res = run_python("print(6 * 7)")
    assert res.ok and res.stdout.strip() == "42" and res.isolation == "unsafe:socket_preamble"


def test_unknown_mode_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_SANDBOX", "yolo")
    isolation._state.pop("mode", None)
    with pytest.raises(SandboxUnavailable, match="SWARM_SANDBOX"):
        run_python("print(1)")


def _modes() -> list[str]:
    modes = ["unsafe"]
    if isolation.bwrap_works():
        modes.append("bwrap")
    if os.geteuid() == 0 and "--pid" in sandbox._unshare_prefix() and unshare_root_works():
        modes.append("unshare")
    return modes


REAL_MODES = [m for m in _modes() if m != "unsafe"]


@pytest.fixture(params=_modes())
def mode(request: pytest.FixtureRequest) -> Iterator[str]:
    isolation.set_mode(request.param)
    yield str(request.param)
    isolation._state.pop("mode", None)


@pytest.fixture(params=REAL_MODES)
def real_mode(request: pytest.FixtureRequest) -> Iterator[str]:
    isolation.set_mode(request.param)
    yield str(request.param)
    isolation._state.pop("mode", None)


def test_bytes_written_are_capped(mode: str) -> None:
    code = "import os\nfor i in range(64):\n    open(f'f{i}', 'wb').write(os.urandom(1 << 20))\nprint('wrote')"
    res = run_python(code, SandboxLimits(timeout_s=20, disk_mb=8, file_size_mb=4))
    assert not res.ok and "wrote" not in res.stdout, res


def test_setsid_daemon_does_not_outlive_the_run(mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the run's dir (others may run sandboxes meanwhile)
    marker = "swarm-daemon-" + os.urandom(4).hex()
    code = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        os.execv('/bin/sleep', ['/bin/sleep', '300', '{marker}'])\n"
        "    os._exit(0)\n"
        "time.sleep(0.3)\n"
        "print('spawned')\n"
    )
    res = run_python(code, SandboxLimits(timeout_s=3))
    time.sleep(0.2)
    alive = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmd_has(p, marker)]
    assert alive == [], (res, alive)
    assert list(tmp_path.glob("swarm_sbx_*")) == []  # the temp dir is gone


def _cmd_has(proc: Path, marker: str) -> bool:
    try:
        return marker.encode() in (proc / "cmdline").read_bytes()
    except OSError:
        return False


def test_environment_is_cleared(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_ADMIN_KEY", "top-secret")
    res = run_python("import os\nprint(sorted(os.environ.items()))")
    assert res.ok and "top-secret" not in res.stdout and "SWARM_ADMIN_KEY" not in res.stdout


@pytest.mark.skipif(not isolation.bwrap_works() and os.geteuid() != 0, reason="needs bwrap or root unshare")
def test_service_files_and_processes_are_out_of_reach(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Real isolation: the service's database, its /proc/<pid>/environ and a loopback server are unreachable."""
    isolation._state.pop("mode", None)
    monkeypatch.delenv("SWARM_SANDBOX", raising=False)
    db = tmp_path / "swarm.db"
    db.write_text("tenant prompts")
    os.chmod(db, 0o600)
    os.chmod(tmp_path, 0o700)
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted: list[bool] = []
    threading.Thread(target=lambda: accepted.append(bool(server.accept())), daemon=True).start()
    code = f"""
import os, signal, socket
out = []
for what, fn in [
    # socket.SocketType is the real class (the preamble only swaps socket.socket): only a namespace stops it
    ("loopback", lambda: socket.SocketType().connect(("127.0.0.1", {port}))),
    ("db", lambda: open({str(db)!r}).read()),
    ("environ", lambda: open('/proc/{os.getpid()}/environ', 'rb').read()),
    ("signal", lambda: os.kill({os.getpid()}, signal.SIGUSR1)),
    ("append", lambda: open({str(db)!r}, 'a').write('x')),
]:
    try:
        fn()
        out.append(what + ':reached')
    except BaseException as exc:
        out.append(what + ':' + type(exc).__name__)
print(' '.join(out))
"""
    res = run_python(code)
    assert "reached" not in res.stdout and res.stdout.strip(), res
    assert db.read_text() == "tenant prompts" and accepted == []
    server.close()


FORK_CAP = 200  # the test's own bound: even with no process limit at all it makes at most this many processes


def test_process_limit_stops_a_fork_bomb(mode: str) -> None:
    """RLIMIT_NPROC holds in every mode, also when the service runs as root (which the kernel exempts from it):
    forking is refused at the limit, long before the wall-clock limit."""
    code = (
        "import os, time\n"
        "made = 0\n"
        "try:\n"
        f"    for _ in range({FORK_CAP}):\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(2)\n"
        "            os._exit(0)\n"
        "        made += 1\n"
        "except OSError as exc:\n"
        "    print('refused', made, type(exc).__name__)\n"
        "else:\n"
        "    print('unrefused', made)\n"
    )
    res = run_python(code, SandboxLimits(timeout_s=20, nproc=16))
    verdict, made, *_ = [*res.stdout.split(), "", ""]
    assert verdict == "refused" and int(made) < 16, res
    assert not res.timed_out and res.duration_s < 10, res


def _host_uid_of(stdout: str) -> int:
    """The uid the code ran as, seen from outside every user namespace (its uid mapped through uid_map)."""
    lines = stdout.strip().splitlines()
    uid = int(lines[0])
    for entry in lines[1:]:
        inside, outside, count = (int(x) for x in entry.split())
        if inside <= uid < inside + count:
            return outside + uid - inside
    raise AssertionError(f"uid {uid} is not mapped: {stdout!r}")


def test_code_never_runs_as_root_on_the_host(mode: str) -> None:
    res = run_python("import os\nprint(os.getuid())\nprint(open('/proc/self/uid_map').read())")
    assert res.ok, res
    host_uid = _host_uid_of(res.stdout)
    assert host_uid != 0, res.stdout
    if os.geteuid() == 0:
        assert host_uid == isolation.NOBODY, res.stdout


def test_bwrap_is_probed_with_the_command_a_run_uses(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bubblewrap that cannot build the run's own sandbox (here: an option it rejects) is not used, and the
    refusal says what root needs."""
    monkeypatch.setattr(isolation, "_bwrap_ok", {})
    monkeypatch.setattr(isolation, "_bwrap_namespaces", lambda: ["bwrap", "--no-such-option"])
    monkeypatch.setenv("SWARM_SANDBOX", "bwrap")
    isolation._state.pop("mode", None)
    assert not isolation.bwrap_works()
    with pytest.raises(SandboxUnavailable, match="bubblewrap") as err:
        run_python("print(1)")
    assert ("CAP_SYS_ADMIN" in err.value.message) == (os.geteuid() == 0)


@pytest.mark.skipif(not REAL_MODES, reason="needs bwrap or root unshare")
def test_host_files_and_processes_are_hidden(real_mode: str) -> None:
    """A world-readable host file (outside the service's own dirs) and the host's processes are out of sight."""
    planted = Path("/tmp") / f"swarm_planted_{os.urandom(4).hex()}"
    planted.write_text("host secret")
    os.chmod(planted, 0o644)
    code = f"""
import os
out = []
for path in [{str(planted)!r}, {str(Path(__file__).resolve())!r}, "/etc/passwd"]:
    try:
        open(path).read()
        out.append("read:" + path)
    except OSError:
        pass
for pid in [p for p in os.listdir("/proc") if p.isdigit()]:
    try:
        cmd = open(f"/proc/{{pid}}/cmdline", "rb").read()
    except OSError:
        continue
    if b"pytest" in cmd:
        out.append("saw:" + pid)
print("seen", out)
"""
    try:
        res = run_python(code)
    finally:
        planted.unlink()
    assert res.ok and res.stdout.strip() == "seen []", res


@pytest.mark.skipif(not REAL_MODES, reason="needs bwrap or root unshare")
def test_writes_anywhere_share_one_cap_and_vanish(real_mode: str) -> None:
    """/tmp, /dev/shm and the working dir together hold at most the disk cap, and nothing is left on the host."""
    marker = f"swarm_fill_{os.urandom(4).hex()}"
    code = f"""
written = 0
for where in ["/tmp", "/dev/shm", "."]:
    for k in range(8):
        try:
            with open(f"{{where}}/{marker}{{k}}", "wb") as fh:
                for _ in range(4):
                    fh.write(b"x" * (1 << 20))
                    fh.flush()
                    written += 1
        except OSError:
            break
print(written)
"""
    res = run_python(code, SandboxLimits(timeout_s=20, disk_mb=8, file_size_mb=4))
    assert res.ok, res
    assert int(res.stdout.strip()) <= 8, res  # MB, against a cap of 8 MB over all three places
    left = [p for where in ("/tmp", "/dev/shm") for p in Path(where).glob(marker + "*")]
    assert left == []


def test_unshare_without_a_private_root_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """unshare whose private root cannot be built here (probed with the very command a run uses: here with an
    option it rejects) is not used: auto refuses rather than run code that sees the host's files."""
    from app.bench import unshare_root

    monkeypatch.setattr(unshare_root, "_probe", {})
    monkeypatch.setattr(unshare_root, "FLAGS", ["--no-such-option", *unshare_root.FLAGS])
    monkeypatch.setattr(isolation, "bwrap_works", lambda: False)
    monkeypatch.delenv("SWARM_SANDBOX", raising=False)
    isolation._state.pop("mode", None)
    assert not unshare_root.unshare_root_works()
    for mode in ("auto", "unshare"):
        isolation.set_mode(mode)
        with pytest.raises(SandboxUnavailable, match="mount, network"):
            run_python("print(1)")
    isolation._state.pop("mode", None)
