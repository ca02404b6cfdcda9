"""A burst of concurrent proxied calls from one tenant against a small token budget: how many are served and
refused, the tokens charged and the overshoot past the budget (at most one call's tokens while calls reserve their
estimate at admission), and what is still reserved once the burst is over (0: nothing leaks).

Run: .venv/bin/python benchmarks/budget_burst.py [--calls 50] [--budget 1000] [--max-tokens 150]
The router runs in process on loopback in front of the simulator paced in real time (calls overlap as on a GPU).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import tempfile
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from app.backends.sim import SimBackend
from app.core.settings import Settings
from app.main import create_app
from app.routing import load_agents

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "bench-admin"


async def _call(client: httpx.AsyncClient, max_tokens: int | None) -> tuple[int, int]:
    options = {} if max_tokens is None else {"num_predict": max_tokens}
    body = {"model": "gemma2:2b", "messages": [{"role": "user", "content": "Say something."}], "stream": False}
    resp = await client.post("/api/chat", json={**body, "options": options})
    if resp.status_code != 200:
        return resp.status_code, 0
    data = resp.json()
    return 200, int(data.get("prompt_eval_count") or 0) + int(data.get("eval_count") or 0)


async def burst(calls: int, budget: int, max_tokens: int | None) -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="budget_burst_"))
    settings = Settings(
        backend="sim",
        database_url=f"sqlite:///{root / 'swarm.db'}",
        data_dir=root / "data",
        runs_dir=root / "runs",
        agents_file=ROOT / "configs" / "agents_heavy.json",
        gpu_vram_gb=24.0,
    )
    sim = SimBackend(load_agents(ROOT / "configs" / "agents_heavy.json"), 24.0, seed=7, time_scale=1.0)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(settings, backend=sim, admin_key=ADMIN), log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(3000):  # up to 30 s for the start-up
        if server.started:
            break
        await asyncio.sleep(0.01)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=120) as admin:
            made = await admin.post(
                "/admin/tenants",
                headers={"Authorization": f"Bearer {ADMIN}"},
                json={"name": "burst", "token_budget": budget},
            )
            auth = {"Authorization": f"Bearer {made.json()['api_key']}"}
        async with httpx.AsyncClient(base_url=url, headers=auth, timeout=120) as client:
            results = await asyncio.gather(*(_call(client, max_tokens) for _ in range(calls)))
            usage = (await client.get("/tenants/me")).json()["usage"]
    finally:
        server.should_exit = True
        await serving
    served = [tokens for status, tokens in results if status == 200]
    return {
        "calls": calls,
        "budget": budget,
        "served": len(served),
        "refused_429": sum(1 for status, _ in results if status == 429),
        "tokens_used": usage["tokens_used"],
        "overshoot": max(0, usage["tokens_used"] - budget),
        "largest_call": max(served, default=0),
        "reserved_after": usage.get("tokens_reserved"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--max-tokens", type=int, default=150, help="num_predict of each call; 0 = none sent")
    args = parser.parse_args()
    out = asyncio.run(burst(args.calls, args.budget, args.max_tokens or None))
    print(" ".join(f"{k}={v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
