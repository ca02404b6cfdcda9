"""Slow request bodies against `swarm serve` (the "R.U.D.Y." attack): N connections each send a whole request head
with `Content-Length: 100000`, then one body byte every 3 s, for `--hold` seconds. Before the body pace
(SWARM_HTTP_BODY_IDLE_S / SWARM_HTTP_BODY_MIN_RATE) they filled the connection cap (SWARM_HTTP_MAX_CONNECTIONS)
and kept /healthz answering 503 for as long as they liked.

Runs the service (simulator backend, a fresh database) in its own process, open (no keyed tenant) or keyed (one
tenant exists, the attacker has no key). Prints /healthz's status every 2 s while the attack runs, what each
attacking connection got back (status line, or "open" when it was never answered) and when it was closed.

Run: .venv/bin/python benchmarks/slow_bodies.py [--connections 1010] [--hold 20] [--keyed]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HEAD = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
)


async def attacker(port: int, hold: float, started: float) -> tuple[str, float]:
    """(what came back, seconds from the start until the server closed the connection or the hold ended)."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as exc:
        return f"refused ({type(exc).__name__})", time.monotonic() - started
    writer.write(HEAD)
    answer = b""
    try:
        while time.monotonic() - started < hold:
            writer.write(b" ")
            await writer.drain()
            try:
                answer = await asyncio.wait_for(reader.read(200), timeout=3)
                break  # an answer or the close
            except TimeoutError:
                continue
    except OSError:
        pass
    finally:
        writer.close()
    status = answer.split(b"\r\n", 1)[0].decode("latin-1", "replace") or ("closed" if answer == b"" else "?")
    if time.monotonic() - started >= hold and not answer:
        status = "open"
    return status, time.monotonic() - started


async def watch(url: str, hold: float, started: float) -> list[str]:
    seen = []
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() - started < hold:
            await asyncio.sleep(2)
            try:
                code = str((await client.get(url + "/healthz")).status_code)
            except httpx.HTTPError as exc:
                code = type(exc).__name__
            seen.append(f"t={time.monotonic() - started:4.1f}s {code}")
    return seen


async def attack(port: int, n: int, hold: float) -> None:
    started = time.monotonic()
    health = asyncio.create_task(watch(f"http://127.0.0.1:{port}", hold, started))
    results = await asyncio.gather(*(attacker(port, hold, started) for _ in range(n)))
    print("/healthz during the attack:", ", ".join(await health))
    by_status = collections.Counter(status for status, _ in results)
    for status, count in by_status.most_common():
        closed = sorted(t for s, t in results if s == status)
        print(f"  {count:5d} x {status!r}: closed after {closed[0]:.1f}..{closed[-1]:.1f} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--connections", type=int, default=1010)
    ap.add_argument("--hold", type=float, default=20.0)
    ap.add_argument("--keyed", action="store_true", help="a keyed tenant exists; the attacker sends no key")
    args = ap.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="swarm_rudy_") as tmp:
        env = {**os.environ, "SWARM_DATABASE_URL": f"sqlite:///{Path(tmp) / 'swarm.db'}", "SWARM_DATA_DIR": tmp}
        env.update({"SWARM_RUNS_DIR": str(Path(tmp) / "runs"), "SWARM_ADMIN_KEY": "bench-admin"})
        cmd = [sys.executable, "-m", "app.cli", "serve", "--dry_run", "--port", str(port), "--log_level", "error"]
        server = subprocess.Popen(cmd, env=env)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(300):
                try:
                    if httpx.get(url + "/healthz").status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            if args.keyed:
                admin = {"Authorization": "Bearer bench-admin"}
                httpx.post(url + "/admin/tenants", json={"name": "tenant"}, headers=admin).raise_for_status()
            mode = "keyed" if args.keyed else "open"
            print(f"{args.connections} slow bodies for {args.hold:g} s against swarm serve ({mode} mode)")
            asyncio.run(attack(port, args.connections, args.hold))
        finally:
            server.terminate()
            server.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
