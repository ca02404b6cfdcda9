"""A hostile upstream streaming one huge NDJSON line without a newline, read through LeanTransport.stream_lines:
time and peak RSS until the line cap refuses it (default cap) and until the whole line is buffered (cap raised).

Run: .venv/bin/python benchmarks/huge_line.py [--mb 200]
Prints seconds and the process's peak RSS growth in MB for each case.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time

from app.backends.transport import LeanTransport
from app.backends.upstream_limits import UpstreamLimits
from app.core.errors import BadBackendResponse

PIECE = b"x" * 65536


async def _serve(total: int) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        await reader.read(1024)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\nconnection: close\r\n\r\n")
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


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _case(total: int, limits: UpstreamLimits) -> tuple[float, str]:
    server, port = await _serve(total)
    transport = LeanTransport(f"http://127.0.0.1:{port}", limits=limits)
    started = time.perf_counter()
    outcome = "no error"
    try:
        async for _ in transport.stream_lines("/api/chat", {"model": "m"}):
            pass
    except BadBackendResponse as exc:
        outcome = exc.message.split(" from ")[0]
    elapsed = time.perf_counter() - started
    await transport.aclose()
    server.close()
    return elapsed, outcome


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    args = parser.parse_args()
    total = args.mb * 1024 * 1024
    for name, limits in (
        ("default caps", UpstreamLimits()),
        ("cap raised above the line", UpstreamLimits(max_line_bytes=total + 1, max_response_bytes=total + 1)),
    ):
        before = _rss_mb()
        elapsed, outcome = asyncio.run(_case(total, limits))
        print(f"{name:28s} {args.mb} MB line: {elapsed:6.2f} s, peak RSS +{_rss_mb() - before:7.1f} MB  ({outcome})")


if __name__ == "__main__":
    main()
