"""How the proxy's hot endpoints are dispatched, measured in-process (no sockets, no other process): the router's
own CPU per non-streaming /api/chat call on the instant simulator, for three ways of reaching the endpoint.

  fastpath     api/fastpath.py: the innermost middleware dispatches the six hot routes itself (the service's way)
  starlette    the same endpoints as plain Starlette routes placed first in the router (what a mounted Starlette
               sub-app gives: no dependency solving, but Starlette's route matching and FastAPI's exception and
               exit-stack middlewares still run)
  fastapi      FastAPI's own routing for everything

Run: .venv/bin/python benchmarks/hot_dispatch.py [--n 3000] [--rounds 5]
Prints µs per call (median over rounds, rounds alternate the variants) and each variant's difference to fastpath.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from starlette.routing import Route

from app.api.fastpath import HotRoutes, hot_table
from app.api.routes import ollama, openai
from app.backends.sim import SimBackend
from app.core.settings import Settings
from app.main import create_app
from app.routing import load_agents

BODY = json.dumps(
    {"model": "gemma2:2b", "messages": [{"role": "user", "content": "Summarize: the cat sat."}], "stream": False}
).encode()
VARIANTS = ("fastpath", "starlette", "fastapi")


def build(variant: str, root: Path) -> FastAPI:
    settings = Settings(
        backend="sim",
        database_url=f"sqlite:///{root / variant}.db",
        data_dir=root / "data",
        runs_dir=root / "runs",
        gpu_vram_gb=24,
    )
    agents = load_agents(settings.default_agents_file())
    app = create_app(settings, backend=SimBackend(agents, 24))
    if variant != "fastpath":
        app.user_middleware = [m for m in app.user_middleware if m.cls is not HotRoutes]
    if variant == "starlette":
        table = hot_table([ollama.router, openai.router])
        plain = [Route(path, route.endpoint, methods=[method]) for (method, path), route in table.items()]
        app.router.routes[:0] = plain
    return app


async def call(app: FastAPI) -> int:
    sent: list[dict[str, Any]] = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/chat",
        "raw_path": b"/api/chat",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 2),
        "app": app,
    }
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return int(sent[0]["status"])


async def per_call_us(app: FastAPI, n: int) -> float:
    for _ in range(50):
        assert await call(app) == 200
    start = time.perf_counter()
    for _ in range(n):
        await call(app)
    return (time.perf_counter() - start) / n * 1e6


async def main(n: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        apps = {v: build(v, Path(tmp)) for v in VARIANTS}
        results: dict[str, list[float]] = {v: [] for v in VARIANTS}
        ctxs = [app.router.lifespan_context(app) for app in apps.values()]
        for ctx in ctxs:
            await ctx.__aenter__()
        try:
            for r in range(rounds):
                order = VARIANTS[r % 3 :] + VARIANTS[: r % 3]
                for v in order:
                    results[v].append(await per_call_us(apps[v], n))
        finally:
            for ctx in ctxs:
                await ctx.__aexit__(None, None, None)
    base = statistics.median(results["fastpath"])
    print(f"router CPU per non-streaming /api/chat on the instant sim (n={n} x {rounds} rounds, median)")
    for v in VARIANTS:
        med = statistics.median(results[v])
        print(f"  {v:10s} {med:8.1f} us/call   ({med - base:+.1f} us vs fastpath)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=3000, help="calls per round and variant")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (the variant order rotates)")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.rounds))
