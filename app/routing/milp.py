"""Exact multi-step routing MILP in CVXPY (HiGHS, DPP-cached per shape).

Agents i, subtasks m (step s(m)), steps t = 0..T-1, U = P - λ_tok·C_tok, y[i,-1] = 1 iff model i is loaded now:

    maximize    Σ_{i,m} U[i,m]·x[i,m] - λ_sw Σ_{i,t} C_sw[i]·z[i,t]
    subject to  Σ_i x[i,m] = 1                    each subtask runs once
                0 <= x[i,m] <= F[i,m]             F = 0 if m exceeds i's context or i exceeds G alone
                x[i,m] <= y[i,s(m)]               only on a resident model
                Σ_i v[i]·y[i,t] <= G              VRAM at every step
                z[i,t] >= y[i,t] - y[i,t-1], z>=0 a load event
                y binary  (x may stay continuous: for fixed y the x-problem is an assignment, integral at a vertex)

C_sw is the raw per-model switch cost; "free when loaded" comes from y[i,-1]. With T = 1 this is the original tool's
objective, solved integrally. The problem is compiled once per (agents, subtasks, steps); the step pattern s(m) is a
parameter too. `lp` uses it when too many resident sets fit G for the exact DP in dp.py (same optimum).
"""

from __future__ import annotations

import threading
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import cvxpy
import numpy as np

from app.core.errors import SolverError, SolveTimeLimit
from app.domain.models import SolverInfo
from app.routing.estimator import Estimates
from app.routing.plan_builder import infeasible, precheck
from app.routing.quiet import silence_highs_banner

# cvxpy's partial stubs miss most of its API (cp.sum, Problem.solve); treat it as dynamic.
cp: Any = cvxpy

DEFAULT_SOLVERS: tuple[str, ...] = ("HIGHS", "SCIPY")
# Tight gaps: the router's answer is compared against brute force to 1e-6, and these problems are tiny.
_SOLVER_OPTS: dict[str, dict[str, Any]] = {
    "HIGHS": {"mip_rel_gap": 1e-9, "mip_abs_gap": 1e-9, "output_flag": False, "log_to_console": False},
    "SCIPY": {"scipy_options": {"method": "highs", "mip_rel_gap": 1e-9, "disp": False}},
}
_MAX_CACHED = 64
# Wall-clock cap of one MILP solve (set from SWARM_SOLVE_TIME_LIMIT_S at wiring). When it is hit, the best
# feasible plan found so far is used and its relative MIP gap reported in SolverInfo.
_limits = {"time_limit_s": 10.0}
_FEASIBLE = 2  # HiGHS's kSolutionStatusFeasible


def set_time_limit(seconds: float) -> None:
    _limits["time_limit_s"] = float(seconds)


@dataclass
class _Model:
    problem: Any
    x: Any
    y: Any
    params: dict[str, Any]
    lock: threading.Lock = field(default_factory=threading.Lock)


_cache: dict[tuple[int, int, int], _Model] = {}
_cache_lock = threading.Lock()


def _build(n: int, m: int, n_steps: int) -> _Model:
    x = cp.Variable((n, m), nonneg=True)
    y = cp.Variable((n, n_steps), boolean=True)
    z = cp.Variable((n, n_steps), nonneg=True)
    par = {
        "U": cp.Parameter((n, m)),
        "F": cp.Parameter((n, m), nonneg=True),
        "v": cp.Parameter(n, nonneg=True),
        "G": cp.Parameter(nonneg=True),
        "y_prev": cp.Parameter((n, 1), nonneg=True),
        "csw": cp.Parameter(n, nonneg=True),
        # E[t, m] = 1 iff subtask m runs at step t, so (y @ E)[i, m] = y[i, step(m)]. A parameter, not a constant,
        # so one compiled problem serves every step pattern of a shape (the horizon changes at each MPC step).
        "E": cp.Parameter((n_steps, m), nonneg=True),
    }
    y_before = cp.hstack([par["y_prev"], y[:, :-1]]) if n_steps > 1 else par["y_prev"]
    constraints = [
        cp.sum(x, axis=0) == 1,
        x <= par["F"],
        x <= y @ par["E"],
        par["v"] @ y <= par["G"],
        z >= y - y_before,
    ]
    objective = cp.Maximize(cp.sum(cp.multiply(par["U"], x)) - par["csw"] @ cp.sum(z, axis=1))
    problem = cp.Problem(objective, constraints)
    assert problem.is_dcp(dpp=True), "routing MILP must be DPP so the canonicalization is cached"
    return _Model(problem, x, y, par)


def _model_for(est: Estimates) -> _Model:
    key = (len(est.agents), len(est.subtask_ids), est.n_steps)
    with _cache_lock:
        model = _cache.get(key)
        if model is None:
            if len(_cache) >= _MAX_CACHED:
                _cache.pop(next(iter(_cache)))  # oldest shape first; shapes repeat within a workload
            model = _cache[key] = _build(*key)
        return model


def _try_solve(model: _Model, solver: str) -> str:
    silence_highs_banner()
    opts = {k: (dict(v) if isinstance(v, dict) else v) for k, v in _SOLVER_OPTS.get(solver, {}).items()}
    if solver == "HIGHS":
        opts["time_limit"] = _limits["time_limit_s"]
    elif solver == "SCIPY":
        opts["scipy_options"]["time_limit"] = _limits["time_limit_s"]
    try:
        # warm_start=False: cvxpy hands HiGHS the previous solve's solution as a MIP start, and with changed
        # parameters HiGHS then reported a suboptimal plan as optimal (caught by the brute-force test).
        with warnings.catch_warnings():  # a time-limited solve warns "may be inaccurate": its gap is reported
            warnings.simplefilter("ignore", UserWarning)
            model.problem.solve(solver=solver, verbose=False, warm_start=False, **opts)
    except (cp.SolverError, ValueError) as exc:
        return f"error: {exc}"
    return str(model.problem.status)


def solve_milp(
    est: Estimates, *, solvers: tuple[str, ...] = DEFAULT_SOLVERS
) -> tuple[list[int], list[frozenset[int]], SolverInfo]:
    """Solve the MILP; on a solver error or non-optimal status try the next solver and record fallback_from."""
    precheck(est)
    model = _model_for(est)
    with model.lock:  # one cached problem per shape: parameter values must not interleave across threads
        p = model.params
        p["U"].value = np.where(est.feasible, est.utility_base, 0.0)
        p["F"].value = est.feasible.astype(np.float64)
        p["v"].value = est.vram
        p["G"].value = est.gpu_vram_gb
        p["y_prev"].value = est.loaded.astype(np.float64)[:, None]
        p["csw"].value = est.lambda_switch * est.switch_cost_raw
        step_matrix = np.zeros((est.n_steps, len(est.subtask_ids)))
        step_matrix[est.steps, np.arange(len(est.subtask_ids))] = 1.0
        p["E"].value = step_matrix
        failures: list[str] = []
        last = "no solver tried"
        limited = False
        for solver in solvers:
            start = time.perf_counter()
            status = _try_solve(model, solver)
            elapsed = (time.perf_counter() - start) * 1000.0
            if status in (cp.INFEASIBLE, cp.INFEASIBLE_INACCURATE):
                raise infeasible(est, "the subtasks of some step cannot share the GPU")
            gap = _limit_gap(model, status)
            if (status == cp.OPTIMAL or gap is not None) and model.x.value is not None and model.y.value is not None:
                x, y = np.asarray(model.x.value), np.asarray(model.y.value)
                info = SolverInfo(
                    name=solver,
                    status="time_limit" if gap is not None else status,
                    solve_time_ms=elapsed,
                    fallback_from=failures[0] if failures else None,
                    gap=gap,
                    time_limit_s=_limits["time_limit_s"] if gap is not None else None,
                )
                assignment = [int(i) for i in x.argmax(axis=0)]
                sets = [frozenset(int(i) for i in np.flatnonzero(y[:, t] > 0.5)) for t in range(est.n_steps)]
                return assignment, sets, info
            failures.append(solver)
            last = status
            limited = limited or status in (cp.USER_LIMIT, cp.OPTIMAL_INACCURATE)
            if status == cp.USER_LIMIT:
                break  # the next solver gets the same limit: the whole solve stays within one limit
    if limited:
        raise SolveTimeLimit(
            f"no feasible plan within the {_limits['time_limit_s']:g}s solve time limit (SWARM_SOLVE_TIME_LIMIT_S); "
            "retry with fewer subtasks or agents"
        )
    raise SolverError(f"all MILP solvers failed ({', '.join(failures)}); last status: {last}")


def _limit_gap(model: _Model, status: str) -> float | None:
    """The relative MIP gap when the time limit stopped HiGHS with a feasible plan in hand, else None."""
    if status != cp.USER_LIMIT:
        return None
    info = model.problem.solver_stats.extra_stats
    if getattr(info, "primal_solution_status", 0) != _FEASIBLE:
        return None
    return float(getattr(info, "mip_gap", float("inf")))
