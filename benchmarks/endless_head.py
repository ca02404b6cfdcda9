"""A hostile upstream whose response head never ends (`X-n: v` header lines without end): how long each Ollama
transport (the service's lean HTTP/1.1 client and httpx) reads before refusing it, what it answers, and its peak
RSS growth. Each transport runs in a fresh process; the fake stops after --seconds.

Run: .venv/bin/python benchmarks/endless_head.py [--seconds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import socket
import subprocess
import sys
import threading
import time

from app.backends.ollama import OllamaBackend
from app.backends.transport import TransportKind, make_transport
from app.core.errors import SwarmError


def _fake(seconds: float) -> int:
    """A loopback server answering every request with header lines for `seconds`; returns its port."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\n")
        started, n = time.monotonic(), 0
        try:
            while time.monotonic() - started < seconds:
                writer.write(b"".join(b"X-%d: v\r\n" % (n + k) for k in range(1000)))
                n += 1000
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    loop = asyncio.new_event_loop()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    loop.run_until_complete(asyncio.start_server(handle, sock=sock))
    threading.Thread(target=loop.run_forever, daemon=True).start()
    return int(sock.getsockname()[1])


def one(kind: TransportKind, seconds: float) -> None:
    port = _fake(seconds)
    backend = OllamaBackend(make_transport(kind, f"http://127.0.0.1:{port}", deadline_s=seconds + 5))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    async def call() -> str:
        try:
            await backend.chat({"model": "m", "messages": [], "stream": False})
            return "answered"
        except SwarmError as exc:
            return f"{type(exc).__name__}: {exc.message[-60:]}"
        finally:
            await backend.aclose()

    started = time.perf_counter()
    outcome = asyncio.run(call())
    took = time.perf_counter() - started
    grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024
    print(f"{kind:6s} {took:7.2f} s  +{grown:7.1f} MB peak RSS  {outcome}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--kind", choices=["lean", "httpx"])
    args = parser.parse_args()
    if args.kind:
        one(args.kind, args.seconds)
        return
    for kind in ("lean", "httpx"):
        subprocess.run([sys.executable, __file__, "--kind", kind, "--seconds", str(args.seconds)], check=True)


if __name__ == "__main__":
    main()
