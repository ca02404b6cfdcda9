"""Run untrusted Python in a resource-limited, network-less subprocess that can never hang the caller (the choice
of isolation is app/bench/isolation.py's: without a real one, code is refused unless the operator opts in)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.bench import unshare_root
from app.bench.isolation import bwrap_prefix, dir_bytes, resolve, sweep
from app.bench.unshare_root import INSIDE

NOBODY = 65534
_PREAMBLE = r"""
import json, os, resource, sys
_cfg = json.loads(sys.argv[1])
for _name, _val in _cfg["rlimits"].items():
    _res = getattr(resource, _name)
    # soft < hard for CPU so the kernel sends SIGXCPU (a recognisable reason) before SIGKILL.
    resource.setrlimit(_res, (_val, _val + 1 if _name == "RLIMIT_CPU" else _val))
_program = open(_cfg["program"], encoding="utf-8").read()
# Imports after the uid drop could hit unreadable interpreter dirs (e.g. /root/.pyenv), so warm them up.
for _m in _cfg["preimport"]:
    try:
        __import__(_m)
    except Exception:
        pass
import socket, _socket
class _NoSocket(socket.socket):
    def __init__(self, *a, **k):
        raise PermissionError("network access is disabled in this sandbox")
def _no_net(*a, **k):
    raise PermissionError("network access is disabled in this sandbox")
socket.socket = _NoSocket
_socket.socket = _NoSocket
for _f in ("create_connection", "create_server", "socketpair", "fromfd", "getaddrinfo"):
    setattr(socket, _f, _no_net)
if _cfg["drop_to"] is not None:
    os.setgroups([])
    os.setgid(_cfg["drop_to"])
    os.setuid(_cfg["drop_to"])
del _f, _m, _name, _val, _res
sys.argv = ["program.py"]
exec(compile(_program, "program.py", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
"""
_PREIMPORT = [
    "math", "cmath", "re", "string", "collections", "itertools", "functools", "heapq", "bisect", "json",
    "random", "statistics", "fractions", "decimal", "typing", "hashlib", "operator", "copy", "datetime",
    "array", "textwrap", "unicodedata", "numbers", "struct", "calendar", "traceback", "dataclasses",
]  # fmt: skip


@dataclass(frozen=True)
class SandboxLimits:
    timeout_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 512
    file_size_mb: int = 16
    nproc: int = 64
    output_cap: int = 8192
    disk_mb: int = 64  # total bytes the program may write


@dataclass(frozen=True)
class SandboxResult:
    ok: bool
    timed_out: bool
    exit_code: int | None
    killed_reason: str | None
    stdout: str
    stderr: str
    duration_s: float
    isolation: str


# Tried in order: full (net + pid namespace, as root), then with a user namespace (unprivileged), then net only.
_UNSHARE_FLAGS = [
    ["--net", "--pid", "--fork", "--kill-child"],
    ["--user", "--map-root-user", "--net", "--pid", "--fork", "--kill-child"],
    ["--net"],
    ["--user", "--map-root-user", "--net"],
]
_probe_lock = threading.Lock()
_probe_cache: dict[str, list[str]] = {}


def _probe_prefix(prefix: list[str]) -> bool:
    """True when `prefix python` really runs in another network namespace."""
    cmd = [*prefix, sys.executable, "-I", "-c", "import os;print(os.readlink('/proc/self/ns/net'))"]
    try:
        own = os.readlink("/proc/self/ns/net")
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return out.returncode == 0 and out.stdout.strip().startswith("net:") and out.stdout.strip() != own


def _unshare_prefix() -> list[str]:
    """The first unshare invocation that works here (tested once, cached); [] when none does."""
    with _probe_lock:
        if "prefix" in _probe_cache:
            return _probe_cache["prefix"]
        found: list[str] = []
        exe = shutil.which("unshare")
        # A shell as pid 1 of the new pid namespace: pid 1 ignores default-action signals such as SIGXCPU.
        shim = ["--", "/bin/sh", "-c", '"$@"', "sh"]
        if exe and sys.platform.startswith("linux"):
            for flags in _UNSHARE_FLAGS:
                if _probe_prefix([exe, *flags, *shim]):
                    found = [exe, *flags, *shim]
                    break
        _probe_cache["prefix"] = found
        return found


def network_isolation(use_unshare: bool = True) -> str:
    """What code runs behind: 'bwrap+socket_preamble', 'unshare+socket_preamble' or, in unsafe mode only,
    'unsafe:...'. Raises SandboxUnavailable when no real isolation is available and unsafe mode is off."""
    mode = resolve(_unshare_prefix() if use_unshare else [])
    if mode == "bwrap":
        return "bwrap+socket_preamble"
    if mode == "unshare":
        return "unshare+socket_preamble"
    return "unsafe:unshare+socket_preamble" if use_unshare and _unshare_prefix() else "unsafe:socket_preamble"


def _signal_reason(sig: int) -> str:
    return {
        signal.SIGXCPU: "cpu_time_limit",
        signal.SIGXFSZ: "file_size_limit",
        signal.SIGKILL: "killed",
        signal.SIGSEGV: "segfault",
    }.get(signal.Signals(sig), f"signal_{sig}")


def _tail(path: Path, cap: int) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - cap))
            return fh.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _classify(rc: int | None, timed_out: bool, stderr: str, shim: bool) -> tuple[int | None, str | None]:
    if timed_out:
        return rc, "wall_timeout"
    if rc is None:
        return None, "unknown"
    sig = -rc if rc < 0 else (rc - 128 if shim and 128 < rc < 160 else 0)
    if sig:
        return rc, _signal_reason(sig)
    if rc != 0 and "MemoryError" in stderr:
        return rc, "memory_limit"
    return rc, None


def run_python(
    program: str, limits: SandboxLimits | None = None, *, use_unshare: bool = True, args: list[str] | None = None
) -> SandboxResult:
    """Run `program` with `python -I` in a fresh temp dir; never raises for anything the program does."""
    lim = limits or SandboxLimits()
    isolation = network_isolation(use_unshare)
    bwrap = isolation.startswith("bwrap")
    # Both real modes give the code a private root of its own: only /usr and the interpreter, read-only, and a
    # size-capped /work, /tmp (and /dev/shm); unsafe mode runs it in a host dir.
    private_root = bwrap or isolation.startswith("unshare")
    prefix = _unshare_prefix() if use_unshare and not private_root else []
    # Root bypasses the process limit (RLIMIT_NPROC) and file permissions: the code runs as nobody, a real uid
    # on the host (bubblewrap's own user namespace would map it back to root, see isolation._bwrap_namespaces).
    root = os.geteuid() == 0 and "--map-root-user" not in prefix
    work = Path(tempfile.mkdtemp(prefix="swarm_sbx_"))  # private (0700), removed afterwards
    try:
        (work / "program.py").write_text(program, encoding="utf-8")
        (work / "preamble.py").write_text(_PREAMBLE, encoding="utf-8")
        if bwrap:
            prefix = bwrap_prefix(work, lim.disk_mb * 1024 * 1024)
        elif private_root:
            unshare_root.prepare(work)
            prefix = unshare_root.unshare_prefix(work, lim.disk_mb * 1024 * 1024)
        elif root:  # the code's dir (the real modes give it a private /work of its own instead)
            os.chown(work, NOBODY, NOBODY)
        files = INSIDE if private_root else str(work)
        cfg = {
            "program": f"{files}/program.py",
            "preimport": _PREIMPORT,
            "drop_to": NOBODY if root else None,
            "rlimits": {
                "RLIMIT_CPU": max(1, lim.cpu_s),
                "RLIMIT_AS": lim.memory_mb * 1024 * 1024,
                "RLIMIT_FSIZE": lim.file_size_mb * 1024 * 1024,
                "RLIMIT_NPROC": lim.nproc,
                "RLIMIT_CORE": 0,
            },
        }
        python = os.path.realpath(sys.executable) if private_root else sys.executable
        cmd = [*prefix, python, "-I", f"{files}/preamble.py", json.dumps(cfg), *(args or [])]
        return _execute(cmd, work, lim, isolation, shim=bool(prefix))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _execute(cmd: list[str], work: Path, lim: SandboxLimits, isolation: str, shim: bool) -> SandboxResult:
    started = time.monotonic()
    out_path, err_path = work / ".stdout", work / ".stderr"
    timed_out = False
    rc: int | None = None
    env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
    try:
        with out_path.open("wb") as out, err_path.open("wb") as err:
            # Output goes to files (capped by RLIMIT_FSIZE) so a chatty program cannot fill our memory.
            proc = subprocess.Popen(
                cmd, cwd=work, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, start_new_session=True
            )
            try:
                rc, timed_out, over_disk = _wait(proc, work, lim)
            finally:
                # Always kill the group, then anything that left it (setsid): nothing outlives the run.
                _kill_group(proc)
                if rc is None:
                    rc = proc.wait()
                if isolation.startswith("unsafe"):  # a pid namespace already took everything down with it
                    sweep(work)
    except OSError as exc:
        return SandboxResult(False, False, None, f"spawn_failed: {exc}", "", "", 0.0, isolation)
    if over_disk:
        stdout, stderr = _tail(out_path, lim.output_cap), _tail(err_path, lim.output_cap)
        return SandboxResult(False, False, rc, "disk_limit", stdout, stderr, time.monotonic() - started, isolation)
    stdout, stderr = _tail(out_path, lim.output_cap), _tail(err_path, lim.output_cap)
    code, reason = _classify(rc, timed_out, stderr, shim)
    ok = not timed_out and code == 0 and reason is None
    return SandboxResult(ok, timed_out, code, reason, stdout, stderr, time.monotonic() - started, isolation)


def _wait(proc: subprocess.Popen[bytes], work: Path, lim: SandboxLimits) -> tuple[int | None, bool, bool]:
    """(exit code, timed out, wrote too much): polls, so the bytes written in `work` are capped while it runs."""
    deadline = time.monotonic() + lim.timeout_s
    cap = lim.disk_mb * 1024 * 1024
    while True:
        try:
            return proc.wait(timeout=min(0.1, max(0.0, deadline - time.monotonic()))), False, False
        except subprocess.TimeoutExpired:
            if time.monotonic() >= deadline:
                return None, True, False
            if dir_bytes(work, cap) > cap:
                return None, False, True


def describe(result: SandboxResult) -> str:
    """One line for score details: why a run failed, with the end of stderr."""
    if result.ok:
        return f"ok in {result.duration_s:.2f}s ({result.isolation})"
    last = result.stderr.strip().splitlines()[-1:] or [""]
    return f"failed: {result.killed_reason or f'exit {result.exit_code}'}; {last[0][:200]}"


def as_dict(result: SandboxResult) -> dict[str, Any]:
    return {k: getattr(result, k) for k in result.__dataclass_fields__}
