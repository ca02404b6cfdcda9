"""Proxy overhead: the simulated Ollama called directly vs through the router (both live, one uvicorn worker each).

Run: .venv/bin/python benchmarks/proxy_overhead.py [--n 2000] [--streams 64] [--rounds 20] [--repeats 5]
                                                    [--paced_time_scale 1] [--paced_rounds 3]

Starts `swarm sim-ollama --time_scale 0` and `swarm serve --backend ollama` (upstream = that sim over HTTP) in
subprocesses on free loopback ports, measures sequential latency (non-streaming /api/chat and
/v1/chat/completions, explicit model and model="auto") and the throughput of 64 concurrent NDJSON streams, prints
p50/p95/p99 added latency and the throughput ratio, and shuts both servers down. Then the same 64 streams against
a second pair whose sim paces answers like a model decoding (--time_scale 1), where throughput is bounded by
generation, as with a real Ollama, rather than by three processes sharing the CPU.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx

ROOT = Path(__file__).resolve().parents[1]
MODEL = "gemma2:2b"
CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "Summarize: the cat sat on the mat."}]}
OPENAI = {"model": MODEL, "messages": [{"role": "user", "content": "Summarize: the cat sat on the mat."}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def servers(tmp: Path, time_scale: float = 0.0) -> Iterator[tuple[str, str]]:
    sim_port, router_port = free_port(), free_port()
    sim_url, router_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{router_port}"
    env = {
        **os.environ,
        "SWARM_DATABASE_URL": f"sqlite:///{tmp / 'swarm.db'}",
        "SWARM_DATA_DIR": str(tmp / "data"),
        "SWARM_RUNS_DIR": str(tmp / "runs"),
        "SWARM_GPU_VRAM_GB": "24",
    }
    cli = [sys.executable, "-m", "app.cli"]
    sim_cmd = [*cli, "sim-ollama", "--port", str(sim_port), "--time_scale", str(time_scale), "--gpu_vram_gb", "24"]
    router_cmd = [*cli, "serve", "--backend", "ollama", "--ollama_base_url", sim_url, "--port", str(router_port)]
    procs = [
        subprocess.Popen(sim_cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL),
        subprocess.Popen([*router_cmd, "--log_level", "warning"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL),
    ]
    try:
        for url in (sim_url, router_url):
            wait_ready(url)
        yield sim_url, router_url
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def wait_ready(url: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url + "/", timeout=1.0).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


async def sequential(
    client: httpx.AsyncClient, urls: dict[str, str], path: str, body: dict[str, object], n: int
) -> tuple[dict[str, list[float]], list[float]]:
    """Alternate direct and routed requests so drift hits both equally; latencies in ms."""
    lat: dict[str, list[float]] = {k: [] for k in urls}
    reported: list[float] = []
    for _ in range(n):
        for name, base in urls.items():
            started = time.perf_counter()
            resp = await client.post(base + path, json=body)
            lat[name].append((time.perf_counter() - started) * 1e3)
            assert resp.status_code == 200, resp.text
            if "x-swarm-overhead-ms" in resp.headers:
                reported.append(float(resp.headers["x-swarm-overhead-ms"]))
    return lat, reported


async def one_stream(session: aiohttp.ClientSession, url: str) -> None:
    async with session.post(url + "/api/chat", json=CHAT) as resp:
        assert resp.status == 200, await resp.text()
        last = b""
        async for line in resp.content:  # NDJSON lines as they arrive
            last = line.strip() or last
        assert b'"done":true' in last, last


async def concurrent(url: str, streams: int, rounds: int) -> float:
    """Requests per second of `streams` concurrent NDJSON streams, each repeated `rounds` times.

    The load generator is aiohttp: httpx spent ~5 ms of CPU per stream here, so it, not the servers, was the
    bottleneck (and a noisy one). With aiohttp the simulated Ollama saturates first, as a real one would."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=streams)) as session:

        async def worker() -> None:
            for _ in range(rounds):
                await one_stream(session, url)

        await asyncio.gather(*(worker() for _ in range(streams)))  # warm the connections
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(streams)))
        return streams * rounds / (time.perf_counter() - started)


def row(label: str, lat: dict[str, list[float]], reported: list[float]) -> str:
    d, r = lat["direct"], lat["router"]
    added = [pct(r, q) - pct(d, q) for q in (50, 95, 99)]
    rep = [pct(reported, q) for q in (50, 95, 99)] if reported else [float("nan")] * 3
    return (
        f"{label:<28} {pct(d, 50):7.2f} {pct(r, 50):7.2f} | {added[0]:6.2f} {added[1]:6.2f} {added[2]:6.2f}"
        f" | {rep[0]:6.3f} {rep[1]:6.3f} {rep[2]:6.3f}"
    )


async def run(args: argparse.Namespace, sim_url: str, router_url: str) -> None:
    urls = {"direct": sim_url, "router": router_url}
    print(f"sequential: {args.n} requests per target (after {args.warmup} warm-up), one connection each")
    cols = ("d_p50", "r_p50", "|", "+p50", "+p95", "+p99", "|", "hdr50", "hdr95", "hdr99")
    print(f"{'case':<28} " + " ".join(c if c == "|" else f"{c:>7}" if c[0] in "dr" else f"{c:>6}" for c in cols))
    async with httpx.AsyncClient(timeout=60) as client:
        cases = [
            ("/api/chat stream=false", "/api/chat", {**CHAT, "stream": False}),
            ("/v1/chat/completions", "/v1/chat/completions", OPENAI),
        ]
        for label, path, body in cases:
            await sequential(client, urls, path, body, args.warmup)
            lat, reported = await sequential(client, urls, path, body, args.n)
            print(row(label, lat, reported))
        auto = {"direct": sim_url, "router": router_url}
        body = {**CHAT, "stream": False}
        lat, _ = await sequential(client, {"direct": auto["direct"]}, "/api/chat", body, args.n // 2)
        auto_body = {**body, "model": "auto"}
        lat_r, reported = await sequential(client, {"router": auto["router"]}, "/api/chat", auto_body, args.n // 2)
        print(row("/api/chat model=auto", {**lat, **lat_r}, reported))
    print("+pXX = router pXX - direct pXX (ms); hdrXX = the router's own x-swarm-overhead-ms header")
    print(f"\nconcurrent, instant upstream: {args.streams} streams x {args.rounds} rounds of /api/chat NDJSON")
    await throughput(args, sim_url, router_url, args.rounds)


async def throughput(args: argparse.Namespace, sim_url: str, router_url: str, rounds: int) -> None:
    runs: dict[str, list[float]] = {"direct": [], "router": []}
    for _ in range(args.repeats):  # alternate, so load from other processes hits both sides alike
        runs["direct"].append(await concurrent(sim_url, args.streams, rounds))
        runs["router"].append(await concurrent(router_url, args.streams, rounds))
    direct, routed = statistics.median(runs["direct"]), statistics.median(runs["router"])
    ratios = [r / d for d, r in zip(runs["direct"], runs["router"], strict=True)]
    print(f"direct {direct:8.1f} req/s   router {routed:8.1f} req/s   (medians of {args.repeats} alternating runs)")
    print(f"throughput ratio router/direct: median {statistics.median(ratios):.2f}, min {min(ratios):.2f}")
    print("per-run ratios " + " ".join(f"{r:.2f}" for r in ratios))


async def paced(args: argparse.Namespace, sim_url: str, router_url: str) -> None:
    print(
        f"\nconcurrent, paced upstream (sim --time_scale {args.paced_time_scale:g}: answers take the catalog's decode"
        f" time): {args.streams} streams x {args.paced_rounds} rounds"
    )
    await throughput(args, sim_url, router_url, args.paced_rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--streams", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--paced_time_scale", type=float, default=1.0, help="0 skips the paced run")
    parser.add_argument("--paced_rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, servers(Path(tmp)) as (sim_url, router_url):
        asyncio.run(run(args, sim_url, router_url))
    if args.paced_time_scale > 0:
        with tempfile.TemporaryDirectory() as tmp, servers(Path(tmp), args.paced_time_scale) as (sim_url, router_url):
            asyncio.run(paced(args, sim_url, router_url))


if __name__ == "__main__":
    main()
