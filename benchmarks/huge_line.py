"""A hostile upstream sending one huge line without its end: an NDJSON line without a newline read through
LeanTransport.stream_lines (the native path), and an SSE event without its blank line read through
LeanTransport.open_raw and the compat relay's SseMeter (what /v1/chat/completions, /v1/completions, /v1/responses
and /v1/messages do with a stream). Time and peak RSS until the cap refuses it (default caps) and until the whole
line is buffered (cap raised above it).

Run: .venv/bin/python benchmarks/huge_line.py [--mb 200]
Prints seconds and the peak RSS growth in MB of each case, each case in a fresh process.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import subprocess
import sys
import time

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
}


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


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _run_one(name: str, mb: int) -> None:
    path, raised = CASES[name]
    total = mb * 1024 * 1024
    limits = UpstreamLimits(2 * total, 2 * total) if raised else UpstreamLimits()
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
