"""A fork loop in the code_eval sandbox: how many processes it makes before RLIMIT_NPROC refuses the next one, and
how long the run takes, in each isolation mode that works here (bounded: at most --cap forks, each child sleeping
2 s, so a missing limit shows as "cap reached" instead of hurting the machine).

Run: .venv/bin/python benchmarks/sandbox_fork.py [--nproc 64] [--cap 500]
Prints, per mode: the uid the code runs as on the host, the forks made, why they stopped, and the run's seconds.
"""

from __future__ import annotations

import argparse
import os

from app.bench import isolation, sandbox
from app.bench.sandbox import SandboxLimits, run_python

PROGRAM = """
import os, time
uid = os.getuid()
for line in open('/proc/self/uid_map'):
    inside, outside, count = (int(x) for x in line.split())
    if inside <= uid < inside + count:
        host_uid = outside + uid - inside
made, why = 0, "cap reached"
try:
    for _ in range({cap}):
        if os.fork() == 0:
            time.sleep(2)
            os._exit(0)
        made += 1
except OSError as exc:
    why = "refused (" + type(exc).__name__ + ")"
print(host_uid, made, why)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nproc", type=int, default=SandboxLimits().nproc)
    parser.add_argument("--cap", type=int, default=500)
    args = parser.parse_args()
    modes = ["unsafe"]
    if isolation.bwrap_works():
        modes.append("bwrap")
    if os.geteuid() == 0 and "--pid" in sandbox._unshare_prefix():
        modes.append("unshare")
    print(f"service euid {os.geteuid()}, RLIMIT_NPROC {args.nproc}, at most {args.cap} forks")
    for mode in modes:
        isolation.set_mode(mode)
        res = run_python(PROGRAM.format(cap=args.cap), SandboxLimits(timeout_s=30, nproc=args.nproc))
        host_uid, made, why = res.stdout.split(maxsplit=2) if res.ok else ("?", "?", res.stderr[-200:])
        print(f"{res.isolation:30s} host uid {host_uid:>5s}: {made:>4s} forks, {why.strip()}, {res.duration_s:.2f} s")


if __name__ == "__main__":
    main()
