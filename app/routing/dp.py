"""Exact dynamic program over the feasible resident sets of each step: the `lp` fast path."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np

from app.routing.estimator import BoolArray, Estimates, FloatArray, IntArray
from app.routing.plan_builder import infeasible, precheck

# The DP runs while G admits at most MAX_DP_SETS resident sets (every catalog of up to 12 models) and its work,
# sets x agents x (steps + subtasks), stays under MAX_DP_WORK. Past that the MILP is faster (the crossover is
# measured by benchmarks/route_latency.py; its numbers are in the README).
MAX_DP_SETS = 4096
MAX_DP_WORK = 4_000_000
# Below these sizes the plain broadcast forms beat the per-agent loops (sets x agents x subtasks cells; sets^2 pairs).
SMALL_CELLS = 200_000
SMALL_PAIRS = 512 * 512
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


def fitting_sets(est: Estimates) -> tuple[IntArray, BoolArray] | None:
    """The resident sets the DP ranges over, or None when the MILP is the faster exact method."""
    tables = _enumerate_sets(tuple(float(v) for v in est.vram), float(est.gpu_vram_gb), MAX_DP_SETS)
    if tables is None:
        return None
    work = tables[0].size * len(est.agents) * (est.n_steps + len(est.subtask_ids))
    return tables if work <= MAX_DP_WORK else None


def _positions(masks: IntArray, n_agents: int) -> Callable[[IntArray], IntArray]:
    """mask -> index in `masks`, or -1 when that subset does not fit G."""
    if n_agents <= 22:
        table = np.full(1 << n_agents, -1, dtype=np.int64)
        table[masks] = np.arange(masks.size)
        return lambda q: table[q]
    order = np.argsort(masks)
    ordered = masks[order]

    def look(q: IntArray) -> IntArray:
        i = np.minimum(np.searchsorted(ordered, q), ordered.size - 1)
        return np.where(ordered[i] == q, order[i], -1)

    return look


def _step_values(est: Estimates, member: BoolArray, t: int) -> tuple[FloatArray, IntArray, IntArray]:
    """For every candidate set: best total utility of step t's subtasks inside it, and who runs each."""
    cols = np.flatnonzero(est.steps == t)
    n_sets = member.shape[0]
    if cols.size == 0:
        return np.zeros(n_sets), cols, np.zeros((n_sets, 0), dtype=np.int64)
    util = np.where(est.feasible[:, cols], est.utility_base[:, cols], -np.inf)
    if n_sets * util.size <= SMALL_CELLS:  # one broadcast: fastest for small tables
        within = np.where(member[:, :, None], util[None, :, :], -np.inf)  # [sets, agents, subtasks]
        who_small = within.argmax(axis=1)  # ties -> lowest agent index
        picked = np.take_along_axis(within, who_small[:, None, :], axis=1)[:, 0, :]
        return picked.sum(axis=1), cols, who_small
    best = np.full((n_sets, cols.size), -np.inf)
    who = np.zeros((n_sets, cols.size), dtype=np.int64)
    for i in range(member.shape[1]):  # agent by agent: memory sets x subtasks; ties -> lowest agent index
        rows = np.flatnonzero(member[:, i])
        better = util[i][None, :] > best[rows]
        best[rows] = np.where(better, util[i][None, :], best[rows])
        who[rows] = np.where(better, i, who[rows])
    return best.sum(axis=1), cols, who


def _transition(
    value: FloatArray,
    masks: IntArray,
    member: BoolArray,
    cost: FloatArray,
    set_cost: FloatArray,
    pos: Callable[[IntArray], IntArray],
) -> tuple[FloatArray, IntArray]:
    """For every set s: max over sets p of value[p] - C(s minus p), and the p attaining it.

    With C additive and >= 0, C(s minus p) = C(s) - C(s & p), and max_p value[p] + C(s & p) equals
    max over q subset of s of (max over p superset of q of value[p]) + C(q): a superset-max then a subset-max
    transform over the (downward-closed) family of fitting sets, O(sets x agents) instead of O(sets^2).
    """
    if value.size**2 <= SMALL_PAIRS:  # the all-pairs form is quicker for a few hundred sets
        weighted = member.astype(np.float64)
        total = value[:, None] - (set_cost[None, :] - (weighted * cost) @ weighted.T)  # [p, s]
        prev = total.argmax(axis=0)
        return total[prev, np.arange(value.size)], prev
    best, arg = value.copy(), np.arange(value.size)
    for i in range(member.shape[1]):  # superset max
        rows = np.flatnonzero(~member[:, i])
        up = pos(masks[rows] | (1 << i))
        rows, up = rows[up >= 0], up[up >= 0]
        better = best[up] > best[rows]
        best[rows[better]], arg[rows[better]] = best[up[better]], arg[up[better]]
    best = best + set_cost
    for i in range(member.shape[1]):  # subset max (a subset of a fitting set fits)
        rows = np.flatnonzero(member[:, i])
        down = pos(masks[rows] ^ (1 << i))
        better = best[down] > best[rows]
        best[rows[better]], arg[rows[better]] = best[down[better]], arg[down[better]]
    return best - set_cost, arg


def solve_dp(est: Estimates) -> tuple[list[int], list[frozenset[int]], float]:
    """Maximize sum_t [value_t(S_t) - λ_sw * C_sw(S_t minus S_{t-1})] over fitting sets, S_{-1} = loaded set.

    Exact for the MILP of ARCHITECTURE.md: given resident sets, subtasks decouple into per-subtask argmaxes, and the
    switch cost only couples consecutive steps. Ties are broken deterministically (the last step's set: the earliest
    in (size, mask) order).
    """
    precheck(est)
    tables = fitting_sets(est)
    if tables is None:
        raise ValueError("too many resident sets fit G for the DP (see MAX_DP_SETS / MAX_DP_WORK): use the MILP")
    masks, member = tables
    cost = est.lambda_switch * est.switch_cost_raw
    if (cost < 0).any():
        raise ValueError("switch costs must be >= 0")
    set_cost = member.astype(np.float64) @ cost
    pos = _positions(masks, member.shape[1])
    steps = [_step_values(est, member, t) for t in range(est.n_steps)]
    value = steps[0][0] - (set_cost - member.astype(np.float64) @ (cost * est.loaded))
    back: list[IntArray] = []
    for t in range(1, est.n_steps):
        reached, prev = _transition(value, masks, member, cost, set_cost, pos)
        back.append(prev)
        value = reached + steps[t][0]
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
