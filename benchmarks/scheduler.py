"""GPU scheduler vs pass-through (fifo: calls reach the simulated Ollama in arrival order, as without the router's
scheduler), on the paced simulator, in one process, same traces, same run.

  (a) swap storm: closed-loop clients, each alternating between two models that do not fit together (G = 14 GB)
  (b) multi-tenant mix: clients pinned to different models plus a tenant that sends bursts (G = 14 GB)
  (c) concurrent jobs: 20 single-subtask jobs on one model, against the simulator's ideal (its parallel slots full)

Run: .venv/bin/python benchmarks/scheduler.py [--time_scale 0.25] [--requests 30] [--seed 1]
The simulator's load times and decode speeds are the heavy catalog's (configs/agents_heavy.json: loads 0.6-2.4 s,
15-60 tokens/s), multiplied by --time_scale to shorten the run; every time printed is in that scaled time.
Prints, per scenario and policy: loads per 100 requests, makespan, mean / p50 / p99 latency, the longest scheduler
wait, and Jain's fairness index over the clients' mean latencies; and the offline grouping's loads (see offline()).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

from app.backends.sim import PARALLEL_EXPONENT, SimBackend
from app.core.settings import SchedulerSettings
from app.domain.models import Agent, Subtask
from app.execution.calls import catalog_specs
from app.execution.orchestrator import Orchestrator
from app.execution.results import JobSpec
from app.execution.sched_types import CallRequest
from app.execution.scheduler import GpuScheduler
from app.execution.state import GpuState
from app.execution.telemetry import Recorder
from app.routing import Estimator, load_agents

ROOT = Path(__file__).resolve().parents[1]
AGENTS = load_agents(ROOT / "configs" / "agents_heavy.json")
SIZES = {a.name: a.vram_gb for a in AGENTS}
G = 14.0
GEMMA, QWEN, LLAMA, PHI4 = (a.name for a in AGENTS)
PROMPT = "Summarize in one line: the quick brown fox jumps over the lazy dog while the cat sleeps."


@dataclass
class Outcome:
    latencies: dict[str, list[float]] = field(default_factory=dict)  # client -> seconds per request
    waits: list[float] = field(default_factory=list)
    loads: int = 0
    makespan: float = 0.0
    requests: int = 0
    models: list[list[str]] = field(default_factory=list)  # per client: the models it asked for, in order


def scaled(policy: str, scale: float) -> SchedulerSettings:
    """The service's default scheduler settings, on the benchmark's clock (every duration times --time_scale)."""
    d = SchedulerSettings()
    return SchedulerSettings(
        policy=policy,
        max_wait_s=d.max_wait_s * scale,
        hold_s=d.hold_s * scale,
        wait_weight=d.wait_weight / scale,
        tick_s=d.tick_s * scale,
    )


def jain(values: list[float]) -> float:
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values)) if values else 1.0


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def offline(chains: list[list[str]]) -> int:
    """Loads of an offline clairvoyant grouping of the same trace: knowing every client's whole sequence and
    ignoring time, repeatedly keep the resident set (within G) that serves the most pending next requests, serve
    chains as long as their next model is resident, and count each model brought in. A reference for how far any
    online policy could group these closed-loop chains (greedy, so not a proof of optimality)."""
    heads = [0] * len(chains)
    resident: set[str] = set()
    loads = 0
    models = sorted({m for c in chains for m in c})
    sets = [s for s in _subsets(models) if sum(SIZES[m] for m in s) <= G + 1e-9]
    while any(h < len(c) for h, c in zip(heads, chains, strict=True)):

        def served(s: frozenset[str]) -> int:
            n = 0
            for h, c in zip(heads, chains, strict=True):
                while h < len(c) and c[h] in s:
                    h, n = h + 1, n + 1
            return n

        best = max(sets, key=lambda s: (served(s), -len(s - resident)))
        loads += len(best - resident)
        resident = set(best)
        for i, c in enumerate(chains):
            while heads[i] < len(c) and c[heads[i]] in resident:
                heads[i] += 1
    return loads


def _subsets(items: list[str]) -> list[frozenset[str]]:
    out = [frozenset()]
    for item in items:
        out += [s | {item} for s in out]
    return [s for s in out if s]


async def run_clients(policy: str, plans: dict[str, tuple[str, list[str], float]], scale: float, seed: int) -> Outcome:
    """plans: client -> (tenant, its models in order, think time between requests in s)."""
    sim = SimBackend(AGENTS, G, seed=seed, time_scale=scale, num_parallel=4)
    sched = GpuScheduler(sim, G, scaled(policy, scale))
    out = Outcome(models=[m for _, m, _ in plans.values()])
    specs = catalog_specs(AGENTS)

    async def client(name: str, tenant: str, models: list[str], think: float) -> None:
        out.latencies[name] = []
        for model in models:
            start = time.monotonic()
            lease = await sched.acquire(CallRequest(tenant, {model: 1.0}, specs))
            async with lease:
                await sim.chat({"model": model, "messages": [{"role": "user", "content": PROMPT}], "stream": False})
            out.waits.append(lease.waited_s)
            out.latencies[name].append(time.monotonic() - start)
            if think:
                await asyncio.sleep(think)

    t0 = time.monotonic()
    await asyncio.gather(*(client(n, t, m, th) for n, (t, m, th) in plans.items()))
    out.makespan = time.monotonic() - t0
    out.loads = int(sim.stats()["loads"])
    out.requests = sum(len(v) for v in out.latencies.values())
    sched.close()
    return out


def swap_storm(n: int) -> dict[str, tuple[str, list[str], float]]:
    pairs = [(LLAMA, QWEN), (QWEN, LLAMA), (PHI4, GEMMA), (GEMMA, PHI4)]  # each pair exceeds G = 14 GB
    return {f"c{i}": (f"t{i}", [pair[k % 2] for k in range(n)], 0.0) for i, pair in enumerate(pairs)}


def tenant_mix(n: int, rng: random.Random, scale: float) -> dict[str, tuple[str, list[str], float]]:
    """Pinned clients read each answer for 0.2 s (scaled) before their next request, as a chat user or an agent
    tool does; without that pause an idle moment never comes and Ollama's own order starves the others."""
    think = 0.2 * scale
    pinned = {f"pinned-{m}": (f"p{i}", [m] * n, think) for i, m in enumerate((GEMMA, QWEN, LLAMA, PHI4))}
    bursty = {f"burst-{k}": ("bursty", [rng.choice((GEMMA, QWEN))] * (n // 3), 4 * think) for k in range(3)}
    return {**pinned, **bursty}


def report(title: str, results: dict[str, Outcome], bound: int | None, max_wait_s: float) -> None:
    print(f"\n{title}")
    print(f"{'policy':<11} {'loads/100':>9} {'makespan s':>10} {'mean s':>7} {'p50 s':>6} {'p99 s':>6} "
          f"{'max wait s':>10} {'Jain':>5}")  # fmt: skip
    for policy, r in results.items():
        lat = [x for v in r.latencies.values() for x in v]
        fair = jain([1 / statistics.mean(v) for v in r.latencies.values() if v])
        print(
            f"{policy:<11} {100 * r.loads / r.requests:>9.1f} {r.makespan:>10.2f} {statistics.mean(lat):>7.2f} "
            f"{pct(lat, 0.5):>6.2f} {pct(lat, 0.99):>6.2f} {max(r.waits):>10.2f} {fair:>5.2f}"
        )
    fifo, ours = results["fifo"], results["swap_aware"]
    fewer = 1 - ours.loads / max(fifo.loads, 1)
    lat_f = [x for v in fifo.latencies.values() for x in v]
    lat_o = [x for v in ours.latencies.values() for x in v]
    print(f"loads: {fifo.loads} fifo, {ours.loads} swap_aware ({fewer:.0%} fewer)"
          + (f", {bound} offline grouping" if bound is not None else ""))  # fmt: skip
    print(f"mean latency below fifo's: {statistics.mean(lat_o) < statistics.mean(lat_f)}; "
          f"p99 / fifo p99 = {pct(lat_o, 0.99) / pct(lat_f, 0.99):.2f}; longest wait {max(ours.waits):.2f} s "
          f"within max_wait_s ({max_wait_s:.2f} s scaled): {max(ours.waits) <= max_wait_s}")  # fmt: skip


async def jobs(policy: str, n: int, scale: float, seed: int) -> tuple[float, int]:
    sim = SimBackend(AGENTS, G, seed=seed, time_scale=scale, num_parallel=4)
    gpu = GpuState(sim, G, scaled(policy, scale))
    agent: list[Agent] = [a for a in AGENTS if a.name == GEMMA]

    async def one(i: int) -> None:
        sub = [Subtask(id="a", task_type="summarize", description=f"{PROMPT} ({i})", estimated_tokens=128)]
        orch = Orchestrator(gpu, Estimator(), Recorder(None, f"t{i % 4}"))
        result = await orch.run(JobSpec(job_id=f"j{i}", agents=agent, subtasks=sub, gpu_vram_gb=G, synthesize=False))
        assert result.status == "succeeded", result.error

    t0 = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(n)))
    return time.monotonic() - t0, int(sim.stats()["loads"])


async def ideal(n: int, scale: float, seed: int) -> float:
    """The simulator with its slots kept full: n calls issued at once straight to it (one load, then P at a time)."""
    sim = SimBackend(AGENTS, G, seed=seed, time_scale=scale, num_parallel=4)

    async def call(i: int) -> None:
        await sim.chat({"model": GEMMA, "messages": [{"role": "user", "content": f"{PROMPT} ({i})"}], "stream": False})

    t0 = time.monotonic()
    await asyncio.gather(*(call(i) for i in range(n)))
    return time.monotonic() - t0


async def serial(n: int, scale: float, seed: int) -> float:
    """One job at a time (how jobs on one GPU ran when a job held the GPU for a whole step)."""
    sim = SimBackend(AGENTS, G, seed=seed, time_scale=scale, num_parallel=4)
    t0 = time.monotonic()
    for i in range(n):
        await sim.chat({"model": GEMMA, "messages": [{"role": "user", "content": f"{PROMPT} ({i})"}], "stream": False})
    return time.monotonic() - t0


async def main(args: argparse.Namespace) -> None:
    scale, n = args.time_scale, args.requests
    print(f"paced sim, time_scale {scale} (times below are scaled), G = {G:g} GB, heavy catalog, "
          f"num_parallel 4, decode shared as k^{PARALLEL_EXPONENT}")  # fmt: skip
    for title, plans in (
        (f"(a) swap storm: 4 closed-loop clients x {n} requests, each alternating two models that do not fit",
         swap_storm(n)),
        ("(b) multi-tenant mix: 4 clients pinned to 4 models (0.2 s think) + a bursty tenant (3 clients)",
         tenant_mix(n, random.Random(args.seed), scale)),
    ):  # fmt: skip
        results: dict[str, Outcome] = {}
        for policy in ("fifo", "swap_aware"):
            results[policy] = await run_clients(policy, plans, scale, args.seed)
        report(title, results, offline(results["fifo"].models), scaled("swap_aware", scale).max_wait_s)
    print(f"\n(c) {args.jobs} concurrent single-model jobs (one subtask each, gemma2:2b)")
    best = await ideal(args.jobs, scale, args.seed)
    one_at_a_time = await serial(args.jobs, scale, args.seed)
    for policy in ("fifo", "swap_aware"):
        took, loads = await jobs(policy, args.jobs, scale, args.seed)
        print(f"{policy:<11} makespan {took:6.2f} s = {took / best:4.2f}x the ideal {best:.2f} s ({loads} load)")
    print(f"one job at a time: {one_at_a_time:.2f} s = {one_at_a_time / best:.2f}x the ideal")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--time_scale", type=float, default=0.25, help="multiplies load and decode times")
    parser.add_argument("--requests", type=int, default=30, help="requests per closed-loop client")
    parser.add_argument("--jobs", type=int, default=20, help="concurrent jobs in (c)")
    parser.add_argument("--seed", type=int, default=1)
    asyncio.run(main(parser.parse_args()))
