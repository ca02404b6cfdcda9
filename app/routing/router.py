"""Mode dispatch: one entry point per routing mode, all producing Plans scored by the same objective."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from app.domain.models import Agent, Assignment, Plan, RoutingParams, RoutingProblem, SolverInfo, Subtask
from app.routing.baselines import greedy_assign, oracle_solve, random_assign, single_assign
from app.routing.dp import fitting_sets, solve_dp
from app.routing.estimator import Estimator
from app.routing.milp import solve_milp
from app.routing.plan_builder import build_plan, infeasible
from app.routing.planner import ChatFn, plan_with_llm
from app.routing.relaxed import solve_relaxed

ROUTING_MODES: tuple[str, ...] = ("lp", "lp_relaxed", "llm", "greedy", "random", "single", "oracle")
ExactMethod = Literal["auto", "dp", "milp"]


def _check_mode(mode: str) -> None:
    if mode not in ROUTING_MODES:
        raise ValueError(f"unknown routing mode {mode!r}; allowed: {', '.join(ROUTING_MODES)}")


def route_lp(problem: RoutingProblem, estimator: Estimator, *, method: ExactMethod = "auto") -> Plan:
    """Exact router: the resident-set DP while it is the faster method (see dp.MAX_DP_SETS / MAX_DP_WORK), else the
    CVXPY MILP; both reach the same optimum (cross-checked in tests)."""
    est = estimator.estimates(problem)
    if method == "dp" or (method == "auto" and fitting_sets(est) is not None):
        start = time.perf_counter()
        assignment, sets, _ = solve_dp(est)
        info = SolverInfo(name="exact_dp", status="optimal", solve_time_ms=(time.perf_counter() - start) * 1e3)
    else:
        assignment, sets, info = solve_milp(est)
    return build_plan(problem, est, assignment, mode="lp", routing_source="lp", base_sets=sets, solver=info)


def _timed(fn: Callable[[], list[int]]) -> tuple[list[int], float]:
    start = time.perf_counter()
    out = fn()
    return out, (time.perf_counter() - start) * 1e3


def route_sync(
    problem: RoutingProblem, estimator: Estimator, mode: str, *, seed: int = 0, single_model: str | None = None
) -> Plan:
    """Every mode except `llm`; blocking (HiGHS), so async callers run it in a worker thread."""
    _check_mode(mode)
    if mode == "llm":
        raise ValueError("mode 'llm' needs a chat function: use `await route(..., chat=...)`")
    if mode == "lp":
        return route_lp(problem, estimator)
    est = estimator.estimates(problem)
    if mode == "lp_relaxed":
        assignment, info, violation = solve_relaxed(est)
        return build_plan(problem, est, assignment, mode=mode, routing_source=mode, solver=info, violation_gb=violation)
    if mode == "oracle":
        start = time.perf_counter()
        assignment, sets, _ = oracle_solve(est)
        info = SolverInfo(name="brute_force", status="optimal", solve_time_ms=(time.perf_counter() - start) * 1e3)
        return build_plan(problem, est, assignment, mode=mode, routing_source=mode, base_sets=sets, solver=info)
    if mode == "single":
        if single_model is None:
            raise ValueError("mode 'single' needs single_model")
        assignment, ms = _timed(lambda: single_assign(est, single_model))
    elif mode == "random":
        assignment, ms = _timed(lambda: random_assign(est, seed))
    else:
        assignment, ms = _timed(lambda: greedy_assign(est))
    info = SolverInfo(name=mode, status="heuristic", solve_time_ms=ms)
    return build_plan(problem, est, assignment, mode=mode, routing_source=mode, solver=info)


async def route(
    problem: RoutingProblem,
    estimator: Estimator,
    mode: str,
    *,
    chat: ChatFn | None = None,
    planner_model: str | None = None,
    seed: int = 0,
    single_model: str | None = None,
    planner_timeout_s: float = 120.0,
) -> Plan:
    """Route a horizon. Non-llm modes run synchronously here (move the call to a thread if the loop matters)."""
    _check_mode(mode)
    if mode == "llm":
        if chat is None:
            raise ValueError("mode 'llm' requires a chat function")
        est = estimator.estimates(problem)
        return await plan_with_llm(problem, est, chat, planner_model=planner_model, timeout_s=planner_timeout_s)
    return route_sync(problem, estimator, mode, seed=seed, single_model=single_model)


def route_single(
    subtask: Subtask,
    agents: list[Agent],
    loaded: list[str],
    gpu_vram_gb: float,
    params: RoutingParams,
    estimator: Estimator,
) -> Assignment:
    """Proxy fast path: argmax of P - λ_tok·C_tok - λ_sw·C_sw over models that fit G on their own (C_sw = 0 when
    loaded); ties go to a loaded model, then catalog order. No solver."""
    cells = estimator.cells(subtask, agents, set(loaded), gpu_vram_gb, params)
    fits = [(i, c) for i, c in enumerate(cells) if c.feasible]
    if not fits:
        problem = RoutingProblem(
            subtasks=[subtask], agents=agents, gpu_vram_gb=gpu_vram_gb, loaded=loaded, params=params
        )
        raise infeasible(estimator.estimates(problem), f"subtask {subtask.id!r} fits no model (VRAM or context)")
    _, best = max(fits, key=lambda ic: (round(ic[1].utility, 12), ic[1].loaded, -ic[0]))
    return Assignment(
        subtask_id=subtask.id,
        model=best.agent,
        step=0,
        estimated_quality=best.quality,
        token_cost=best.token_cost,
        switch_cost=best.switch_cost,
        utility=best.utility,
    )
