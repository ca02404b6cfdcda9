"""The scheduler's swap decision as a routing problem: queued calls are the subtasks, the exact router's solver picks
the next resident set (a "wait" pseudo-model of size 0 lets calls stay queued at value 0)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from app.routing.dp import fitting_sets, solve_dp
from app.routing.estimator import Estimates
from app.routing.milp import solve_milp

if TYPE_CHECKING:
    from app.execution.sched_timing import CallTimes

WAIT = "\x00wait"  # not a model name Ollama accepts, so it never collides
MAX_COLUMNS = 400  # the most valuable queued calls the decision looks at
PLAN_SHARE = 0.95  # deadlines are planned at this share of max_wait_s: the rest absorbs misjudged call times


@dataclass(frozen=True)
class ModelSpec:
    vram_gb: float
    load_ms: float
    tokens_per_s: float = 0.0  # the catalog's decode speed (0: unknown), to guess the calls of an unseen model


@dataclass(frozen=True)
class QueuedDemand:
    """One queued call (or the value of keeping a resident model): its value on each candidate model."""

    values: dict[str, float]


def _columns(
    demands: list[QueuedDemand], resident_values: dict[str, float]
) -> tuple[list[dict[str, float]], list[int]]:
    """Explicit-model calls merge into one column per model (their values add up); the rest stay one per call.
    Returns the columns and, for the first ones, the demand index each stands for."""
    merged: dict[str, float] = {}
    multi: list[int] = []
    for i, d in enumerate(demands):
        if len(d.values) == 1:
            for model, value in d.values.items():
                merged[model] = merged.get(model, 0.0) + value
        else:
            multi.append(i)
    multi.sort(key=lambda i: -max(demands[i].values.values()))
    multi = multi[:MAX_COLUMNS]
    cols = [demands[i].values for i in multi]
    cols += [{m: v} for m, v in merged.items()]
    cols += [{m: v} for m, v in resident_values.items() if v > 0]
    return cols, multi


def choose_resident(
    demands: list[QueuedDemand],
    resident: dict[str, float],
    resident_values: dict[str, float],
    specs: dict[str, ModelSpec],
    capacity_gb: float,
    switch_per_s: float,
) -> tuple[set[str], dict[int, str], str]:
    """The resident set that maximises the value of the work it serves minus the load time it costs (the /route
    objective with the queue as the subtasks), the model chosen for each multi-candidate demand (by index), and a
    one-line reason naming what the swap serves."""
    cols, multi = _columns(demands, resident_values)
    models = sorted({m for c in cols for m in c} | set(resident))
    agents = [WAIT, *models]
    n, k = len(agents), len(cols)
    util = np.zeros((n, k))
    feasible = np.zeros((n, k), dtype=np.bool_)
    feasible[0, :] = True  # any call may stay queued, worth 0 now
    for j, col in enumerate(cols):
        for m, v in col.items():
            i = agents.index(m)
            util[i, j], feasible[i, j] = v, True
    vram = np.array([0.0] + [resident.get(m) or _spec(specs, m).vram_gb for m in models])
    load_s = np.array([0.0] + [_spec(specs, m).load_ms / 1e3 for m in models])
    loaded = np.array([True] + [m in resident for m in models])
    est = Estimates(
        agents=agents,
        subtask_ids=[f"q{j}" for j in range(k)],
        steps=np.zeros(k, dtype=np.int64),
        n_steps=1,
        quality=util,
        est_tokens=np.zeros((n, k)),
        token_cost=np.zeros((n, k)),
        utility_base=util,
        feasible=feasible,
        ctx_ok=np.ones((n, k), dtype=np.bool_),
        vram=vram,
        switch_cost_raw=load_s,
        switch_cost=load_s * ~loaded,
        loaded=loaded,
        gpu_vram_gb=capacity_gb,
        lambda_token=0.0,
        lambda_switch=switch_per_s,
    )
    if fitting_sets(est) is not None:
        assignment, sets, _ = solve_dp(est)
    else:
        assignment, sets, _ = solve_milp(est)
    target = {agents[i] for i in sets[0] if i != 0}
    served = [j for j, i in enumerate(assignment) if i != 0 and agents[i] not in resident]
    names = sorted({agents[assignment[j]] for j in served})
    reason = f"serves {len(served)} queued call group(s) on {', '.join(names)}" if names else "keeps the resident set"
    chosen = {d: agents[assignment[j]] for j, d in enumerate(multi) if assignment[j] != 0}
    return target, chosen, reason


def _spec(specs: dict[str, ModelSpec], model: str) -> ModelSpec:
    return specs.get(model) or ModelSpec(vram_gb=0.0, load_ms=5000.0)


def deadline_plan(
    oldest: dict[str, float],
    start: float,
    max_wait_s: float,
    times: CallTimes,
    spec: Callable[[str], ModelSpec],
    capacity_gb: float,
) -> set[str]:
    """The models to force in now so that no queued call waits past max_wait_s.

    `oldest`: each model queued calls want but that is not resident, with its oldest call's arrival. They are taken
    in the order of those deadlines and packed into successive resident sets (a model joins the set before it when
    both fit in G). The first set can come in at `start` (once the calls in flight have drained); each later one
    once the set before it has loaded and served a call. When a call would pass its deadline by then, the first set
    is forced now; otherwise nothing is."""
    phase: list[str] = []
    first: list[str] = []
    slack = math.inf
    for model in sorted(oldest, key=lambda m: (oldest[m], m)):
        if phase and sum(spec(m).vram_gb for m in [*phase, model]) > capacity_gb + 1e-9:
            first = first or phase
            start += sum(times.load_s(m) for m in phase) + max(times.first_call_s(m) for m in phase)
            phase = []
        phase.append(model)
        slack = min(slack, oldest[model] + PLAN_SHARE * max_wait_s - start)
    return set(first or phase) if slack <= 0 else set()


def fits_beside(
    demands: list[QueuedDemand],
    resident: dict[str, float],
    loading: set[str],
    spec: Callable[[str], ModelSpec],
    capacity_gb: float,
) -> str | None:
    """The most wanted queued model that fits beside the resident ones as they are, if any."""
    free = capacity_gb - sum(resident.values())
    wanted: dict[str, float] = {}
    for d in demands:
        model, value = max(d.values.items(), key=lambda kv: kv[1])
        if model not in resident and model not in loading and spec(model).vram_gb <= free + 1e-9:
            wanted[model] = wanted.get(model, 0.0) + value
    return max(sorted(wanted), key=lambda m: wanted[m]) if wanted else None


def to_evict(
    target: set[str],
    load: list[str],
    resident: dict[str, float],
    values: dict[str, float],
    spec: Callable[[str], ModelSpec],
    capacity_gb: float,
) -> list[str]:
    """Of the resident models the decision drops, only as many as the loads need room for (least valuable first,
    by `values`): an idle model that does not stand in the way stays, ready for its next call."""
    need = sum(spec(m).vram_gb for m in load)
    kept = sum(resident.values())
    evict = []
    for model in sorted((m for m in resident if m not in target), key=lambda m: (values.get(m, 0.0), m)):
        if kept + need <= capacity_gb + 1e-9:
            break
        evict.append(model)
        kept -= resident[model]
    return evict
