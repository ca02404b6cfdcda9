"""Routing latency benchmark: exact `lp` vs the seed-style CVXPY relaxation (rebuilt per call and DPP-cached).

Run: .venv/bin/python benchmarks/route_latency.py
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.domain.knobs import RoutingParams
from app.domain.models import TASK_TYPES, Agent, RoutingProblem, Subtask
from app.routing import Estimator, route_sync
from app.routing.relaxed import build_relaxation, solve_relaxation
from app.routing.router import route_exact

AGENTS = (4, 8, 16)
SUBTASKS = (3, 10, 50)
N_INSTANCES = 8
LOOSE = ((16, 50, 30.0), (16, 50, 48.0))  # bigger GPUs: ~2,100 and ~14,700 resident sets fit


def make_instance(rng: np.random.Generator, n_agents: int, n_subtasks: int, gpu: float = 12.0) -> RoutingProblem:
    """Ollama-like catalog (1-14 GB, 0.4-4 s loads), a 12 GB GPU (or `gpu`) with the smallest model loaded, 2-3
    DAG steps."""
    sizes = rng.uniform(1.0, 14.0, n_agents)
    agents = [
        Agent(
            name=f"model-{i}",
            cost_per_token=float(0.2 + 0.15 * sizes[i]),
            max_ctx=int(rng.choice([4096, 8192, 32768])),
            capabilities={t: float(np.clip(0.3 + 0.04 * sizes[i] + rng.normal(0, 0.08), 0, 1)) for t in TASK_TYPES},
            vram_gb=float(round(sizes[i], 1)),
            load_time_ms=float(400 + 250 * sizes[i]),
        )
        for i in range(n_agents)
    ]
    n_steps = int(rng.integers(2, 4))
    subtasks = [
        Subtask(
            id=f"s{k}",
            task_type=TASK_TYPES[int(rng.integers(len(TASK_TYPES)))],
            estimated_tokens=int(rng.integers(100, 1500)),
            difficulty=float(rng.uniform(0, 1)),
        )
        for k in range(n_subtasks)
    ]
    step_of = {s.id: min(n_steps - 1, k * n_steps // n_subtasks) for k, s in enumerate(subtasks)}
    by_size = sorted(agents, key=lambda a: a.vram_gb)
    return RoutingProblem(
        subtasks=subtasks,
        step_of=step_of,
        agents=agents,
        gpu_vram_gb=gpu if by_size[0].vram_gb <= gpu else by_size[0].vram_gb + 1,
        loaded=[by_size[0].name],
        params=RoutingParams(),
    )


def measure(fn: Callable[[int], object], reps: int) -> tuple[float, float]:
    fn(0)  # warm-up (compiles the cached CVXPY problem for this shape)
    times = []
    for r in range(reps):
        start = time.perf_counter()
        fn(r)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times), float(np.percentile(times, 90))


def bench_cell(n_agents: int, n_subtasks: int, gpu: float = 12.0) -> tuple[str, list[tuple[float, float]]]:
    rng = np.random.default_rng(1000 * n_agents + n_subtasks)
    problems = [make_instance(rng, n_agents, n_subtasks, gpu) for _ in range(N_INSTANCES)]
    estimator = Estimator()
    ests = [estimator.estimates(p) for p in problems]
    big = n_agents * n_subtasks >= 400  # fewer repetitions where the CVXPY paths take tens of ms
    reps = 20 if big else 100
    path = route_sync(problems[0], estimator, "lp").solver
    cached = build_relaxation(n_agents, n_subtasks)
    cols = [
        measure(lambda r: route_sync(problems[r % N_INSTANCES], estimator, "lp"), reps),
        measure(lambda r: route_exact(problems[r % N_INSTANCES], estimator, method="milp"), 10 if big else 30),
        measure(
            lambda r: solve_relaxation(build_relaxation(n_agents, n_subtasks), ests[r % N_INSTANCES]), 8 if big else 25
        ),
        measure(lambda r: solve_relaxation(cached, ests[r % N_INSTANCES]), reps),
    ]
    return (path.name if path else "?"), cols


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()  # --help prints usage, no run
    print("Routing latency, ms (median / p90). lp = full route_sync('lp'): estimates + exact solve + Plan.")
    print("seed-rebuilt = new cp.Problem per call (relaxation); relaxed-DPP = lp_relaxed's cached DPP problem.")
    print("lp-MILP = the same exact model forced through the CVXPY MILP (HiGHS), for reference.")
    heads = ["lp", "lp-MILP", "seed-rebuilt", "relaxed-DPP"]
    print(f"{'agents x subtasks':>17} | {'lp path':>8} | " + " | ".join(f"{h:>15}" for h in heads))
    print("-" * 100)
    ratio = None
    for n_agents in AGENTS:
        for n_subtasks in SUBTASKS:
            path, cols = bench_cell(n_agents, n_subtasks)
            cells = " | ".join(f"{med:6.2f} / {p90:6.2f}" for med, p90 in cols)
            print(f"{f'{n_agents} x {n_subtasks}':>17} | {path:>8} | {cells}")
            if (n_agents, n_subtasks) == (4, 3):
                ratio = (cols[3][0] / cols[0][0], cols[2][0] / cols[0][0])
    for n_agents, n_subtasks, gpu in LOOSE:
        path, cols = bench_cell(n_agents, n_subtasks, gpu=gpu)
        cells = " | ".join(f"{med:6.2f} / {p90:6.2f}" for med, p90 in cols)
        print(f"{f'{n_agents} x {n_subtasks} G={gpu:g}':>17} | {path:>8} | {cells}")
    if ratio:
        print(f"\n4 x 3: lp is {ratio[0]:.1f}x faster than the DPP-cached relaxation, {ratio[1]:.1f}x than rebuilt.")


if __name__ == "__main__":
    main()
