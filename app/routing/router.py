"""Routing entry points (`route`, `route_sync`, dispatched through the registry), the routers' implementations,
and the proxy's single-request fast path."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from app.domain.knobs import RoutingParams
from app.domain.models import Agent, Assignment, Plan, RoutingProblem, SolverInfo, Subtask
from app.routing.baselines import oracle_solve
from app.routing.dp import fitting_sets, solve_dp
from app.routing.estimator import Estimates, Estimator
from app.routing.milp import solve_milp
from app.routing.plan_builder import build_plan, infeasible
from app.routing.planner import ChatFn
from app.routing.registry import EXACT, RouteContext, get_router
from app.routing.relaxed import solve_relaxed

ExactMethod = Literal["auto", "dp", "milp"]


def route_exact(problem: RoutingProblem, estimator: Estimator, *, method: ExactMethod = "auto") -> Plan:
    """Exact router: the resident-set DP while it is the faster method (see dp.MAX_DP_SETS / MAX_DP_WORK), else the
    CVXPY MILP; both reach the same optimum (cross-checked in tests)."""
    est = estimator.estimates(problem)
    if method == "dp" or (method == "auto" and fitting_sets(est) is not None):
        start = time.perf_counter()
        assignment, sets, _ = solve_dp(est)
        info = SolverInfo(name="exact_dp", status="optimal", solve_time_ms=(time.perf_counter() - start) * 1e3)
    else:
        assignment, sets, info = solve_milp(est)
    return build_plan(problem, est, assignment, mode=EXACT, routing_source=EXACT, base_sets=sets, solver=info)


def route_relaxed(problem: RoutingProblem, estimator: Estimator, mode: str) -> Plan:
    est = estimator.estimates(problem)
    assignment, info, violation = solve_relaxed(est)
    return build_plan(problem, est, assignment, mode=mode, routing_source=mode, solver=info, violation_gb=violation)


def route_oracle(problem: RoutingProblem, estimator: Estimator, mode: str) -> Plan:
    est = estimator.estimates(problem)
    start = time.perf_counter()
    assignment, sets, _ = oracle_solve(est)
    info = SolverInfo(name="brute_force", status="optimal", solve_time_ms=(time.perf_counter() - start) * 1e3)
    return build_plan(problem, est, assignment, mode=mode, routing_source=mode, base_sets=sets, solver=info)


def route_heuristic(
    problem: RoutingProblem, estimator: Estimator, mode: str, assign: Callable[[Estimates], list[int]]
) -> Plan:
    """A baseline (greedy, seeded random, one fixed model): no solver, same Plan and objective."""
    est = estimator.estimates(problem)
    start = time.perf_counter()
    assignment = assign(est)
    info = SolverInfo(name=mode, status="heuristic", solve_time_ms=(time.perf_counter() - start) * 1e3)
    return build_plan(problem, est, assignment, mode=mode, routing_source=mode, solver=info)


def route_sync(
    problem: RoutingProblem,
    estimator: Estimator,
    mode: str,
    *,
    seed: int = 0,
    single_model: str | None = None,
    ctx: RouteContext | None = None,
) -> Plan:
    """Every mode that needs no LLM; blocking (HiGHS), so async callers run it in a worker thread."""
    return get_router(mode).solve(problem, estimator, ctx or RouteContext(seed=seed, single_model=single_model))


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
    ctx: RouteContext | None = None,
) -> Plan:
    """Route a horizon (`ctx`, when given, replaces the keyword arguments after `mode`). Non-llm modes run
    synchronously here (move the call to a thread if the loop matters)."""
    if ctx is None:
        ctx = RouteContext(
            chat=chat,
            planner_model=planner_model,
            seed=seed,
            single_model=single_model,
            planner_timeout_s=planner_timeout_s,
        )
    return await get_router(mode).route(problem, estimator, ctx)


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
