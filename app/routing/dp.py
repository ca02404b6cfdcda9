"""Exact dynamic program over the feasible resident sets of each step: the `lp` fast path."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from app.routing.estimator import BoolArray, Estimates, FloatArray, IntArray
from app.routing.plan_builder import infeasible, precheck

# Up to 8 models every subset fits the table (2^8 = 256); larger catalogs use the DP while G admits at most this
# many resident sets (tight GPUs), else the MILP. The DP costs O(steps * sets^2 + sets * agents * subtasks).
MAX_DP_SETS = 512
_EPS = 1e-9


@lru_cache(maxsize=256)
def _enumerate_sets(vram: tuple[float, ...], gpu: float, limit: int) -> tuple[IntArray, BoolArray] | None:
    """Bitmasks of all subsets fitting G, in tie-break order (fewest models first, then mask); None if > limit.

    Cached because a workload routes many horizons against the same catalog and GPU.
    """
    masks = np.zeros(1, dtype=np.int64)
    sizes = np.zeros(1)
    for i, v in enumerate(vram):
        ok = sizes + v <= gpu + _EPS
        masks = np.concatenate([masks, masks[ok] | (1 << i)])
        sizes = np.concatenate([sizes, sizes[ok] + v])
        if masks.size > limit:
            return None
    member = ((masks[:, None] >> np.arange(len(vram), dtype=np.int64)) & 1).astype(np.bool_)
    order = np.lexsort((masks, member.sum(axis=1)))
    cand, member = masks[order], member[order]
    cand.flags.writeable = member.flags.writeable = False
    return cand, member


def fitting_sets(est: Estimates, limit: int = MAX_DP_SETS) -> tuple[IntArray, BoolArray] | None:
    return _enumerate_sets(tuple(float(v) for v in est.vram), float(est.gpu_vram_gb), limit)


def _step_values(est: Estimates, member: BoolArray, t: int) -> tuple[FloatArray, IntArray, IntArray]:
    """For every candidate set: best total utility of step t's subtasks inside it, and who runs each."""
    cols = np.flatnonzero(est.steps == t)
    if cols.size == 0:
        return np.zeros(member.shape[0]), cols, np.zeros((member.shape[0], 0), dtype=np.int64)
    util = np.where(est.feasible[:, cols], est.utility_base[:, cols], -np.inf)
    within = np.where(member[:, :, None], util[None, :, :], -np.inf)  # [sets, agents, subtasks]
    who = within.argmax(axis=1)  # ties -> lowest agent index
    best = np.take_along_axis(within, who[:, None, :], axis=1)[:, 0, :]
    return best.sum(axis=1), cols, who


def solve_dp(est: Estimates) -> tuple[list[int], list[frozenset[int]], float]:
    """Maximize sum_t [value_t(S_t) - λ_sw * C_sw(S_t minus S_{t-1})] over fitting sets, S_{-1} = loaded set.

    Exact for the MILP of ARCHITECTURE.md: given resident sets, subtasks decouple into per-subtask argmaxes, and the
    switch cost only couples consecutive steps. Among equal optima the earliest set in (size, mask) order wins.
    """
    precheck(est)
    tables = fitting_sets(est)
    if tables is None:
        raise ValueError(f"more than {MAX_DP_SETS} resident sets fit G: use the MILP")
    _, member = tables
    cost = est.lambda_switch * est.switch_cost_raw
    weighted = member.astype(np.float64)
    set_cost = weighted @ cost
    # trans[p, s]: cost of loading the models of set s that set p does not hold.
    trans = set_cost[None, :] - (weighted * cost) @ weighted.T
    steps = [_step_values(est, member, t) for t in range(est.n_steps)]
    value = steps[0][0] - (set_cost - weighted @ (cost * est.loaded))
    back: list[IntArray] = []
    for t in range(1, est.n_steps):
        total = value[:, None] - trans
        prev = total.argmax(axis=0)
        back.append(prev)
        value = total[prev, np.arange(member.shape[0])] + steps[t][0]
    last = int(value.argmax())
    if not np.isfinite(value[last]):
        raise infeasible(est, "the subtasks of some step cannot share the GPU")
    chosen = [last]
    for prev in reversed(back):
        chosen.append(int(prev[chosen[-1]]))
    chosen.reverse()
    assignment = [0] * len(est.subtask_ids)
    for t, s in enumerate(chosen):
        _, cols, who = steps[t]
        for k, m in enumerate(cols):
            assignment[int(m)] = int(who[s, k])
    sets = [frozenset(int(i) for i in np.flatnonzero(member[s])) for s in chosen]
    return assignment, sets, float(value[last])
