"""Which isolation untrusted code runs behind (bubblewrap, root + unshare namespaces, or an operator's explicit
unsafe opt-in), and refusing to run it when none is real."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Literal, get_args

from app.bench.unshare_root import INSIDE, unshare_root_works
from app.core.errors import ValidationFailed

SandboxMode = Literal["auto", "bwrap", "unshare", "unsafe"]
MODES: tuple[str, ...] = get_args(SandboxMode)
MODE_ENV = "SWARM_SANDBOX"
NOBODY = 65534

_state: dict[str, str] = {}
_probe_lock = threading.Lock()
_bwrap_ok: dict[str, bool] = {}


class SandboxUnavailable(ValidationFailed):
    """code_eval was asked for but no real isolation is available (CLI exit 2, HTTP 422)."""

    code = "sandbox_unavailable"


def set_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"sandbox mode must be one of {', '.join(MODES)}, got {mode!r}")
    _state["mode"] = mode


def configured_mode() -> str:
    """The operator's choice: set_mode() (service settings), else SWARM_SANDBOX, else auto."""
    mode = _state.get("mode") or os.environ.get(MODE_ENV, "auto").strip().lower() or "auto"
    if mode not in MODES:
        raise SandboxUnavailable(f"{MODE_ENV}: must be one of {', '.join(MODES)}, got {mode!r}")
    return mode


def _python_root() -> str:
    return os.path.realpath(sys.base_prefix)


def _bwrap_namespaces() -> list[str]:
    """Namespaces and privileges. Run by root, bubblewrap's user namespace would map the sandbox's uid to root
    outside it, and the kernel exempts root from RLIMIT_NPROC: so root gets no user namespace, keeps only the
    capabilities to change uid, and the preamble drops to nobody (a real host uid the process limit applies to)
    before the untrusted code runs. Anyone else gets a user namespace in which they are nobody."""
    exe = shutil.which("bwrap") or "bwrap"
    cmd = [exe, "--die-with-parent", "--new-session"]
    if os.geteuid() == 0:
        cmd += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        return [*cmd, "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    return [*cmd, "--unshare-all", "--uid", str(NOBODY), "--gid", str(NOBODY)]


def bwrap_prefix(work: Path, disk_bytes: int) -> list[str]:
    """bubblewrap: new pid, net, ipc and uts namespaces, nothing of the host but /usr and the interpreter
    (read-only), a private /work and /tmp that together hold at most `disk_bytes`, a cleared environment, killed
    with its parent."""
    py_root = _python_root()
    cmd = [*_bwrap_namespaces(), "--ro-bind", "/usr", "/usr"]
    for link in ("lib", "lib64", "bin", "sbin"):
        target = Path("/") / link
        if target.is_symlink():
            cmd += ["--symlink", os.readlink(target), str(target)]
        elif target.is_dir():
            cmd += ["--ro-bind", str(target), str(target)]
    if not py_root.startswith("/usr/"):
        # Its parents are made traversable for nobody (bubblewrap would copy e.g. /root's 0700).
        for parent in reversed(Path(py_root).parents[:-1]):
            cmd += ["--perms", "0755", "--dir", str(parent)]
        cmd += ["--ro-bind", py_root, py_root]
    cmd += ["--proc", "/proc", "--dev", "/dev"]
    # World-writable is private here (own mount namespace): the code's uid may differ from the mount's owner.
    # Half the cap each, so that together they hold no more than it (/dev is not writable for the code).
    half = str(max(1, disk_bytes // 2))
    cmd += ["--perms", "1777", "--size", half, "--tmpfs", "/tmp"]
    cmd += ["--perms", "1777", "--size", half, "--tmpfs", "/work", "--chdir", "/work"]
    cmd += ["--ro-bind", str(work / "program.py"), f"{INSIDE}/program.py"]
    cmd += ["--ro-bind", str(work / "preamble.py"), f"{INSIDE}/preamble.py"]
    cmd += ["--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "LANG", "C.UTF-8", "--"]
    return cmd


def bwrap_works() -> bool:
    """bubblewrap is installed and can build this process's sandbox here: tested once, with the very command a
    run uses (its namespaces, privileges, mounts and options)."""
    with _probe_lock:
        if "ok" not in _bwrap_ok:
            _bwrap_ok["ok"] = bool(shutil.which("bwrap")) and sys.platform.startswith("linux") and _probe_bwrap()
        return _bwrap_ok["ok"]


# What a run does before the code starts (sandbox._PREAMBLE): as root, the drop to nobody.
_PROBE = f"""import os
if os.geteuid() == 0:
    os.setgroups([])
    os.setgid({NOBODY})
    os.setuid({NOBODY})
print('ok')
"""


def _probe_bwrap() -> bool:
    with tempfile.TemporaryDirectory(prefix="swarm_bwrap_probe_") as tmp:
        work = Path(tmp)
        (work / "program.py").write_text(_PROBE, encoding="utf-8")
        (work / "preamble.py").write_text("", encoding="utf-8")
        python = os.path.realpath(sys.executable)
        cmd = [*bwrap_prefix(work, 1 << 20), python, "-I", f"{INSIDE}/program.py"]
        try:
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.SubprocessError):
            return False
    return out.returncode == 0 and out.stdout.strip() == "ok"


def resolve(unshare_prefix: list[str]) -> str:
    """The isolation to use now: "bwrap", "unshare" (root, new mount + net + pid namespaces and a private root,
    run as nobody) or "unsafe"
    (explicit opt-in only); raises SandboxUnavailable naming why when the configured mode cannot run."""
    mode = configured_mode()
    if mode == "unsafe":
        return "unsafe"
    if mode in ("auto", "bwrap") and bwrap_works():
        return "bwrap"
    strong_unshare = os.geteuid() == 0 and "--pid" in unshare_prefix and "--map-root-user" not in unshare_prefix
    if mode in ("auto", "unshare") and strong_unshare and unshare_root_works():
        return "unshare"
    # As root, bubblewrap runs without a user namespace (see _bwrap_namespaces), which takes CAP_SYS_ADMIN.
    as_root = " (as root it needs CAP_SYS_ADMIN; or run the service as another user)" if os.geteuid() == 0 else ""
    why = {
        "bwrap": "bubblewrap (bwrap) is not installed or cannot create namespaces here" + as_root,
        "unshare": "unshare needs root and new mount, network + pid namespaces (with tmpfs and pivot_root), "
        "which this process cannot create",
        "auto": "neither bubblewrap nor root unshare (mount, network + pid namespaces) is available" + as_root,
    }[mode]
    raise SandboxUnavailable(
        f"code_eval refused: no real isolation for model-written code ({why}). Install bubblewrap "
        f"(apt-get install bubblewrap), or set {MODE_ENV}=unsafe to accept running it with only "
        "resource limits and a socket guard"
    )


def dir_bytes(root: Path, stop_at: int) -> int:
    """Bytes of the files under `root` (stops counting past `stop_at`)."""
    total = 0
    stack = [root]
    while stack and total <= stop_at:
        try:
            entries = list(os.scandir(stack.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    total += entry.stat(follow_symlinks=False).st_blocks * 512
            except OSError:
                continue
    return total


def sweep(work: Path) -> int:
    """Kill every process still working in `work` (a daemon that left the process group); returns how many."""
    killed = 0
    marker = str(work)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            cwd = os.readlink(proc / "cwd")
            cmdline = (proc / "cmdline").read_bytes().decode("utf-8", "replace")
        except OSError:
            continue
        if cwd.startswith(marker) or marker in cmdline:
            try:
                os.kill(int(proc.name), signal.SIGKILL)
                killed += 1
            except OSError:
                pass
    return killed
