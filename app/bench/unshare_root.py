"""The unshare mode's private root: a size-capped writable space (/tmp, /work and /dev/shm share one tmpfs), a fresh
/proc for the new pid namespace, and nothing of the host but /usr and the interpreter (read-only), as bubblewrap
builds it; set up by root inside new mount, pid and network namespaces, before the drop to nobody."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

NOBODY = 65534
INSIDE = "/sbx"  # where the program's files appear
FLAGS = ["--mount", "--propagation", "private", "--net", "--pid", "--fork", "--kill-child"]
DEVICES = "null zero full random urandom"  # bound from the host's /dev

# $1 the new root (an empty dir), $2 the run's host dir, $3 the interpreter's root, $4 the byte cap; then the
# command. The shell stays pid 1 of the new pid namespace (pid 1 ignores default-action signals such as SIGXCPU).
SETUP = r"""set -eu
R=$1 W=$2 P=$3 S=$4 RUN_PATH=$PATH
shift 4
PATH=/usr/sbin:/usr/bin:/sbin:/bin
ro_bind() { mkdir -p "$R$1"; mount --rbind "$1" "$R$1"; mount -o remount,bind,ro "$R$1"; }
mount -t tmpfs -o size=1m,mode=0755,nosuid,nodev sbxroot "$R"
mount -t tmpfs -o "size=$S,mode=0755,nosuid,nodev" sbxrw "$W/rw"
for d in tmp work shm; do mkdir -m 1777 "$W/rw/$d"; chmod 1777 "$W/rw/$d"; done
mkdir -p "$R/proc" "$R/dev/shm" "$R/tmp" "$R/work" "$R$INSIDE" "$R/.old"
mount --bind "$W/rw/tmp" "$R/tmp"
mount --bind "$W/rw/work" "$R/work"
mount --bind "$W/rw/shm" "$R/dev/shm"
ro_bind /usr
for l in lib lib64 bin sbin; do
  if [ -L "/$l" ]; then ln -s "$(readlink "/$l")" "$R/$l"; elif [ -d "/$l" ]; then ro_bind "/$l"; fi
done
case "$P" in /usr/*) ;; *) ro_bind "$P" ;; esac
for d in DEVICES; do touch "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"; done
ln -s /proc/self/fd "$R/dev/fd"
for f in program.py preamble.py; do touch "$R$INSIDE/$f"; mount --bind -o ro "$W/$f" "$R$INSIDE/$f"; done
mount -t proc -o nosuid,nodev,noexec proc "$R/proc"
mount -o remount,ro,bind "$R"
cd "$R"
pivot_root . .old
umount -l /.old
cd /work
PATH=$RUN_PATH
"$@"
""".replace("DEVICES", DEVICES).replace("$INSIDE", INSIDE)

_probe_lock = threading.Lock()
_probe: dict[str, bool] = {}


def python_root() -> str:
    return os.path.realpath(sys.base_prefix)


def prepare(work: Path) -> None:
    """The host-side mount points (root-only, 0700 like `work`): what the namespace mounts over them dies with it."""
    (work / "root").mkdir(mode=0o700)
    (work / "rw").mkdir(mode=0o700)


def unshare_prefix(work: Path, disk_bytes: int) -> list[str]:
    """`unshare ... sh -c SETUP` for a run in `work` (prepare() it first); the command to run follows."""
    exe = shutil.which("unshare") or "unshare"
    return [exe, *FLAGS, "--", "/bin/sh", "-c", SETUP, "sh", str(work / "root"), str(work), python_root(),
            str(disk_bytes)]  # fmt: skip


_PROBE = f"""import os
os.setgroups([])
os.setgid({NOBODY})
os.setuid({NOBODY})
open("/work/ok", "w").write("ok")
print(open("/work/ok").read(), os.getppid() == 1)
"""


def unshare_root_works() -> bool:
    """Root can build this private root here (new mount, pid and network namespaces, tmpfs, pivot_root): tested
    once, with the very command a run uses."""
    with _probe_lock:
        if "ok" not in _probe:
            possible = os.geteuid() == 0 and sys.platform.startswith("linux") and bool(shutil.which("unshare"))
            _probe["ok"] = possible and _run_probe()
        return _probe["ok"]


def _run_probe() -> bool:
    with tempfile.TemporaryDirectory(prefix="swarm_unshare_probe_") as tmp:
        work = Path(tmp)
        prepare(work)
        (work / "program.py").write_text(_PROBE, encoding="utf-8")
        (work / "preamble.py").write_text("", encoding="utf-8")
        cmd = [*unshare_prefix(work, 1 << 20), os.path.realpath(sys.executable), "-I", f"{INSIDE}/program.py"]
        try:
            env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}  # as a run's (sandbox._execute)
            out = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False, env=env)
        except (OSError, subprocess.SubprocessError):
            return False
    return out.returncode == 0 and out.stdout.strip() == "ok True"
