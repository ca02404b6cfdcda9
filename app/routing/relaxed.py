"""The original tool's `lp_relaxed`: the continuous single-step relaxation, rounded by argmax (a labelled baseline)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import cvxpy
import numpy as np

from app.core.errors import SolverError
from app.domain.models import SolverInfo
from app.routing.estimator import Estimates
from app.routing.plan_builder import infeasible
from app.routing.quiet import silence_highs_banner

# cvxpy's partial stubs miss most of its API (cp.sum, Problem.solve); treat it as dynamic.
cp: Any = cvxpy

_SOLVERS: tuple[str, ...] = ("HIGHS", "SCIPY")


@dataclass
class Relaxation:
    """maximize Σ U∘x - Σ csw∘y  s.t. Σ_i x[i,m] = 1, x <= y, Σ v∘y <= G, 0 <= x, y <= 1 (no VRAM per step,
    no context check, switch cost 0 for loaded models): exactly what the original tool solved."""

    problem: Any
    x: Any
    y: Any
    params: dict[str, Any]
    lock: threading.Lock = field(default_factory=threading.Lock)


def build_relaxation(n: int, m: int) -> Relaxation:
    x = cp.Variable((n, m), nonneg=True)
    y = cp.Variable(n, nonneg=True)
    par = {
        "U": cp.Parameter((n, m)),
        "csw": cp.Parameter(n, nonneg=True),
        "v": cp.Parameter(n, nonneg=True),
        "G": cp.Parameter(nonneg=True),
    }
    constraints = [
        cp.sum(x, axis=0) == 1,
        x <= cp.reshape(y, (n, 1), order="F") @ np.ones((1, m)),
        par["v"] @ y <= par["G"],
        x <= 1,
        y <= 1,
    ]
    problem = cp.Problem(cp.Maximize(cp.sum(cp.multiply(par["U"], x)) - par["csw"] @ y), constraints)
    assert problem.is_dcp(dpp=True)
    return Relaxation(problem, x, y, par)


_cache: dict[tuple[int, int], Relaxation] = {}
_cache_lock = threading.Lock()


def solve_relaxation(relax: Relaxation, est: Estimates) -> tuple[list[int], SolverInfo]:
    """Set parameters, solve, round each subtask to argmax_i x[i,m] (ties: lowest index, as the original tool)."""
    silence_highs_banner()
    p = relax.params
    p["U"].value = est.utility_base
    p["csw"].value = est.lambda_switch * est.switch_cost
    p["v"].value = est.vram
    p["G"].value = est.gpu_vram_gb
    failures: list[str] = []
    for solver in _SOLVERS:
        start = time.perf_counter()
        try:
            relax.problem.solve(solver=solver, verbose=False, warm_start=False)
        except cp.SolverError:
            failures.append(solver)
            continue
        elapsed = (time.perf_counter() - start) * 1000.0
        if relax.problem.status == cp.OPTIMAL and relax.x.value is not None:
            info = SolverInfo(
                name=solver,
                status=str(relax.problem.status),
                solve_time_ms=elapsed,
                fallback_from=failures[0] if failures else None,
            )
            return [int(i) for i in np.asarray(relax.x.value).argmax(axis=0)], info
        failures.append(solver)
    raise SolverError(f"relaxation failed with {', '.join(failures)}")


def solve_relaxed(est: Estimates) -> tuple[list[int], SolverInfo, float]:
    """DPP-cached per (agents, subtasks); returns the rounded assignment, solver info and the VRAM violation
    the original tool would report (all chosen models counted as co-resident)."""
    if not (est.vram <= est.gpu_vram_gb).any():
        raise infeasible(est, "no model fits in GPU memory")
    key = (len(est.agents), len(est.subtask_ids))
    with _cache_lock:
        relax = _cache.get(key) or _cache.setdefault(key, build_relaxation(*key))
    with relax.lock:
        assignment, info = solve_relaxation(relax, est)
    chosen = sorted(set(assignment))
    violation = max(0.0, float(est.vram[chosen].sum()) - est.gpu_vram_gb)
    return assignment, info, violation
