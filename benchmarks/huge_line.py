"""A hostile upstream sending one huge line without its end: an NDJSON line without a newline read through
LeanTransport.stream_lines (the native path), and an SSE event without its blank line read through
LeanTransport.open_raw and the compat relay's SseMeter (what /v1/chat/completions, /v1/completions, /v1/responses
and /v1/messages do with a stream). Time and peak RSS until the cap refuses it (default caps) and until the whole
line is buffered (cap raised above it).

The "router" cases run the whole path: `swarm serve` in its own process relays POST /v1/chat/completions
(stream) from a fake Ollama sending the huge event; they report the router process's peak RSS growth.

Run: .venv/bin/python benchmarks/huge_line.py [--mb 200]
Prints seconds and the peak RSS growth in MB of each case, each case in a fresh process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.api.compat_relay import SseMeter
from app.backends.transport import LeanTransport
from app.backends.upstream_limits import UpstreamLimits
from app.core.errors import BadBackendResponse

PIECE = b"x" * 65536
CASES = {
    "native, default caps": ("native", False),
    "native, cap raised": ("native", True),
    "compat relay, default caps": ("compat", False),
    "compat relay, cap raised": ("compat", True),
    "router /v1, default caps": ("router", False),
    "router /v1, cap raised": ("router", True),
}
MODEL = {"name": "gemma2:2b", "model": "gemma2:2b", "size": 1_600_000_000}


async def _serve(total: int, sse: bool) -> tuple[asyncio.Server, int]:
    media = b"text/event-stream" if sse else b"application/x-ndjson"

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.read(1024)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: " + media + b"\r\nconnection: close\r\n\r\n")
        if sse:
            writer.write(b'data: {"id":"c","choices":[]}\n\ndata: {"pad":"')
        sent = 0
        try:
            while sent < total:
                writer.write(PIECE)
                sent += len(PIECE)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _native(transport: LeanTransport) -> None:
    async for _ in transport.stream_lines("/api/chat", {"model": "m"}):
        pass


async def _compat(transport: LeanTransport, limits: UpstreamLimits) -> None:
    """The compat relay's stream loop (compat_relay._blocks) without the HTTP server around it."""
    reply = await transport.open_raw("POST", "/v1/chat/completions", b'{"model":"m","stream":true}')
    meter = SseMeter("openai", max_event=limits.max_line_bytes, url=transport.base_url)
    async for piece in reply.body:
        meter.feed(piece)
    meter.flush()


async def _case(path: str, total: int, limits: UpstreamLimits) -> tuple[float, str]:
    server, port = await _serve(total, sse=path == "compat")
    transport = LeanTransport(f"http://127.0.0.1:{port}", limits=limits)
    started = time.perf_counter()
    outcome = "no error: the whole line was buffered"
    try:
        await (_native(transport) if path == "native" else _compat(transport, limits))
    except BadBackendResponse as exc:
        outcome = exc.message.split(" from ")[0] + " refused"
    elapsed = time.perf_counter() - started
    await transport.aclose()
    server.close()
    return elapsed, outcome


def _fake_ollama(total: int) -> Starlette:
    async def chat(request: Request) -> Response:
        async def events() -> AsyncIterator[bytes]:
            yield b'data: {"id":"c","object":"chat.completion.chunk","choices":[]}\n\ndata: {"pad":"'
            for _ in range(total // len(PIECE)):
                yield PIECE
            yield b'"}\n\ndata: [DONE]\n\n'

        return StreamingResponse(events(), media_type="text/event-stream")

    async def listed(request: Request) -> Response:
        return JSONResponse({"models": [MODEL], "version": "0.0.0"})

    routes = [Route("/v1/chat/completions", chat, methods=["POST"])]
    routes += [Route(p, listed) for p in ("/api/tags", "/api/ps", "/api/version")]
    return Starlette(routes=routes)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _router(total: int, limits: UpstreamLimits) -> Iterator[tuple[str, int]]:
    """The fake Ollama in a thread here, `swarm serve` in front of it in its own process: (router URL, its pid)."""
    fake = uvicorn.Server(uvicorn.Config(_fake_ollama(total), port=_free_port(), log_level="warning"))
    threading.Thread(target=fake.run, daemon=True).start()
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "SWARM_DATABASE_URL": f"sqlite:///{Path(tmp) / 'swarm.db'}",
            "SWARM_DATA_DIR": str(Path(tmp) / "data"),
            "SWARM_RUNS_DIR": str(Path(tmp) / "runs"),
            "SWARM_UPSTREAM_MAX_RESPONSE_BYTES": str(limits.max_response_bytes),
            "SWARM_UPSTREAM_MAX_LINE_BYTES": str(limits.max_line_bytes),
        }
        while not fake.started:
            time.sleep(0.01)
        upstream = f"http://127.0.0.1:{fake.config.port}"
        cmd = [sys.executable, "-m", "app.cli", "serve", "--backend", "ollama", "--ollama_base_url", upstream]
        proc = subprocess.Popen([*cmd, "--port", str(port), "--log_level", "error"], env=env, stderr=subprocess.DEVNULL)
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                time.sleep(0.1)
            else:
                raise RuntimeError("the router did not come up")
            yield url, proc.pid
        finally:
            proc.terminate()
            proc.wait(timeout=20)
            fake.should_exit = True


def _vm_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _run_router(name: str, mb: int, limits: UpstreamLimits) -> None:
    with _router(mb * 1024 * 1024, limits) as (url, pid):
        before = _vm_mb(pid, "VmRSS")
        body = {"model": "gemma2:2b", "messages": [{"role": "user", "content": "hi"}], "stream": True}
        started = time.perf_counter()
        received = 0
        last = b""
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=600) as resp:
            for piece in resp.iter_bytes():
                received += len(piece)
                last = (last + piece)[-300:]
        elapsed = time.perf_counter() - started
        outcome = "an SSE event refused" if b"exceeds" in last else f"relayed whole, {received / 2**20:.0f} MB"
        growth = _vm_mb(pid, "VmHWM") - before
    print(f"{name:28s} {mb} MB line: {elapsed:6.2f} s, peak RSS +{growth:7.1f} MB  ({outcome}; router process)")


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_one(name: str, mb: int) -> None:
    path, raised = CASES[name]
    total = mb * 1024 * 1024
    limits = UpstreamLimits(2 * total, 2 * total) if raised else UpstreamLimits()
    if path == "router":
        _run_router(name, mb, limits)
        return
    before = _rss_mb()
    elapsed, outcome = asyncio.run(_case(path, total, limits))
    print(f"{name:28s} {mb} MB line: {elapsed:6.2f} s, peak RSS +{_rss_mb() - before:7.1f} MB  ({outcome})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--case", choices=sorted(CASES), help="run only this case, in this process")
    args = parser.parse_args()
    if args.case:
        _run_one(args.case, args.mb)
        return
    for name in CASES:
        subprocess.run([sys.executable, __file__, "--mb", str(args.mb), "--case", name], check=True)


if __name__ == "__main__":
    main()
