"""Baseline routers: greedy, seeded random, single fixed model, and the brute-force oracle."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np

from app.routing.estimator import Estimates
from app.routing.plan_builder import infeasible, loaded_set, precheck

_EPS = 1e-9
MAX_ORACLE_SEQUENCES = 2_000_000
# picks one agent from (subtask, candidate agents, resident models, models already chosen in this step)
Picker = Callable[[int, list[int], set[int], set[int]], int]


def _fill_step(est: Estimates, cols: Sequence[int], resident: set[int], pick: Picker) -> list[int] | None:
    """Assign one step's subtasks in order, each to a model that fits next to those already chosen this step."""
    chosen: set[int] = set()
    size = 0.0
    out: list[int] = []
    for m in cols:
        cands = [
            i
            for i in range(len(est.agents))
            if est.feasible[i, m] and (i in chosen or size + est.vram[i] <= est.gpu_vram_gb + _EPS)
        ]
        if not cands:
            return None
        i = pick(m, cands, resident, chosen)
        if i not in chosen:
            chosen.add(i)
            size += float(est.vram[i])
        out.append(i)
    return out


def _stepwise(est: Estimates, pick: Picker) -> list[int]:
    precheck(est)
    assignment = [0] * len(est.subtask_ids)
    resident = set(loaded_set(est))
    for t in range(est.n_steps):
        cols = [int(m) for m in np.flatnonzero(est.steps == t)]
        picks = _fill_step(est, cols, resident, pick)
        if picks is None:
            # Place the most constrained subtasks first before declaring the step infeasible.
            cols.sort(key=lambda m: int(est.feasible[:, m].sum()))
            picks = _fill_step(est, cols, resident, pick)
        if picks is None:
            raise infeasible(est, f"no co-resident set of models serves step {t}")
        used = set(picks)
        for m, i in zip(cols, picks, strict=True):
            assignment[m] = i
        size = float(est.vram[list(used)].sum())
        # What stays resident for the next step's switch-cost estimate (same spirit as plan_builder.carry_over).
        for i in sorted(resident - used):
            if size + est.vram[i] <= est.gpu_vram_gb + _EPS:
                used.add(i)
                size += float(est.vram[i])
        resident = used
    return assignment


def greedy_assign(est: Estimates) -> list[int]:
    """Best utility (switch cost counted when the model is not resident) among models that fit this step;
    a resident model wins only a tie, so a loaded model is never preferred just for being loaded."""

    def pick(m: int, cands: list[int], resident: set[int], chosen: set[int]) -> int:
        def key(i: int) -> tuple[float, bool, int]:
            warm = i in resident or i in chosen
            score = float(est.utility_base[i, m]) - (0.0 if warm else est.lambda_switch * est.switch_cost_raw[i])
            return (round(score, 12), warm, -i)

        return max(cands, key=key)

    return _stepwise(est, pick)


def random_assign(est: Estimates, seed: int) -> list[int]:
    """Uniform among the feasible models that fit this step; deterministic for a seed."""
    rng = np.random.default_rng(seed)
    return _stepwise(est, lambda m, cands, resident, chosen: int(cands[int(rng.integers(len(cands)))]))


def single_assign(est: Estimates, model: str) -> list[int]:
    if model not in est.agents:
        raise ValueError(f"single model {model!r} is not in the catalog ({', '.join(est.agents)})")
    k = est.agents.index(model)
    if est.vram[k] > est.gpu_vram_gb + _EPS:
        raise infeasible(est, f"single model {model} needs {est.vram[k]:g} GB")
    bad = [sid for m, sid in enumerate(est.subtask_ids) if not est.ctx_ok[k, m]]
    if bad:
        raise infeasible(est, f"single model {model} lacks the context for subtasks {bad}")
    return [k] * len(est.subtask_ids)


def oracle_solve(est: Estimates) -> tuple[list[int], list[frozenset[int]], float]:
    """Exhaustive search over every sequence of fitting resident sets; given the sets, each subtask takes its
    best model inside its step's set, so this enumerates every (assignment, resident sets) pair that can win."""
    precheck(est)
    n, n_steps = len(est.agents), est.n_steps
    sets = [
        frozenset(c)
        for r in range(n + 1)
        for c in itertools.combinations(range(n), r)
        if sum(est.vram[list(c)]) <= est.gpu_vram_gb + _EPS
    ]
    if len(sets) ** n_steps > MAX_ORACLE_SEQUENCES:
        raise ValueError(f"oracle too large: {len(sets)} sets ^ {n_steps} steps")
    util = np.where(est.feasible, est.utility_base, -np.inf)
    value = np.array(
        [
            [sum(max((util[i, m] for i in s), default=-np.inf) for m in np.flatnonzero(est.steps == t)) for s in sets]
            for t in range(n_steps)
        ]
    ).reshape(n_steps, len(sets))
    cost = est.lambda_switch * est.switch_cost_raw
    trans = np.array([[sum(cost[i] for i in b - a) for b in sets] for a in sets])
    first = np.array([sum(cost[i] for i in s - loaded_set(est)) for s in sets])
    total = value[0] - first
    for t in range(1, n_steps):
        total = total[..., None] + value[t] - trans.reshape((1,) * (t - 1) + trans.shape)
    flat = int(np.argmax(total))
    best = float(total.reshape(-1)[flat])
    if not np.isfinite(best):
        raise infeasible(est, "the subtasks of some step cannot share the GPU")
    seq = [sets[k] for k in np.unravel_index(flat, total.shape)]
    assignment = [max(seq[int(est.steps[m])], key=lambda i: (util[i, m], -i)) for m in range(len(est.subtask_ids))]
    return assignment, seq, best
