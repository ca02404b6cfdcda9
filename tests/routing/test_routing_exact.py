"""Exact router: DP == CVXPY MILP == brute force on seeded random instances; VRAM never exceeded."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
import pytest

from app.core.errors import InfeasibleError, SolverError
from app.domain.models import Plan, RoutingProblem
from app.routing import Estimator, route_sync
from app.routing.baselines import oracle_solve
from app.routing.dp import fitting_sets, solve_dp
from app.routing.estimator import Estimates
from app.routing.milp import solve_milp
from app.routing.plan_builder import build_plan, evaluate_objective
from app.routing.router import route_exact

N_INSTANCES = 220


def _instance_shape(seed: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(10_000 + seed)
    return int(rng.integers(2, 7)), int(rng.integers(1, 7)), int(rng.integers(1, 4))


def _assert_within_g(plan: Plan, problem: RoutingProblem) -> None:
    vram = {a.name: a.vram_gb for a in problem.agents}
    for t, resident in enumerate(plan.resident_per_step):
        assert sum(vram[n] for n in resident) <= problem.gpu_vram_gb + 1e-9, (t, resident)
    for a in plan.assignments:
        assert a.model in plan.resident_per_step[a.step]
    assert plan.vram_violation_gb == 0.0


def test_lp_matches_brute_force_and_milp(random_problem: Callable[..., RoutingProblem]) -> None:
    checked = 0
    for seed in range(N_INSTANCES):
        problem = random_problem(seed, *_instance_shape(seed))
        est = Estimator().estimates(problem)
        try:
            _, _, best = oracle_solve(est)
        except Exception as exc:  # the instance generator may produce infeasible ones: all routers must agree
            with pytest.raises(type(exc)):
                route_sync(problem, Estimator(), "lp")
            continue
        plan = route_sync(problem, Estimator(), "lp")
        assert plan.solver is not None and plan.solver.name == "exact_dp"
        assert plan.objective == pytest.approx(best, abs=1e-6), seed
        _assert_within_g(plan, problem)
        milp = route_exact(problem, Estimator(), method="milp")
        assert milp.solver is not None and milp.solver.name == "HIGHS"
        assert milp.objective == pytest.approx(best, abs=1e-6), seed
        _assert_within_g(milp, problem)
        checked += 1
    assert checked >= 180  # the generator must mostly produce feasible instances to mean anything


def _explicit_brute_force(est: Estimates) -> float:
    """Independent of the DP and the oracle: every assignment x every superset sequence of its used models."""
    n, m, n_steps = len(est.agents), len(est.subtask_ids), est.n_steps
    fitting = [
        frozenset(c)
        for r in range(n + 1)
        for c in itertools.combinations(range(n), r)
        if sum(est.vram[list(c)]) <= est.gpu_vram_gb + 1e-9
    ]
    best = -np.inf
    for assignment in itertools.product(range(n), repeat=m):
        if not all(est.feasible[i, k] for k, i in enumerate(assignment)):
            continue
        used = [{i for k, i in enumerate(assignment) if est.steps[k] == t} for t in range(n_steps)]
        options = [[s for s in fitting if used[t] <= s] for t in range(n_steps)]
        for sets in itertools.product(*options):
            best = max(best, evaluate_objective(None, est, assignment, sets))  # type: ignore[arg-type]
    return float(best)


def test_dp_matches_explicit_enumeration(random_problem: Callable[..., RoutingProblem]) -> None:
    for seed in range(40):
        rng = np.random.default_rng(seed)
        problem = random_problem(500 + seed, int(rng.integers(2, 5)), int(rng.integers(1, 5)), int(rng.integers(1, 4)))
        est = Estimator().estimates(problem)
        expected = _explicit_brute_force(est)
        if not np.isfinite(expected):
            continue
        assignment, sets, value = solve_dp(est)
        assert value == pytest.approx(expected, abs=1e-9)
        assert evaluate_objective(problem, est, assignment, sets) == pytest.approx(expected, abs=1e-9)


def test_milp_falls_back_to_another_solver(random_problem: Callable[..., RoutingProblem]) -> None:
    problem = random_problem(3, 4, 4, 2)
    est = Estimator().estimates(problem)
    assignment, sets, info = solve_milp(est, solvers=("NOT_A_SOLVER", "SCIPY"))
    assert info.name == "SCIPY" and info.fallback_from == "NOT_A_SOLVER" and info.status == "optimal"
    plan = build_plan(problem, est, assignment, mode="lp", routing_source="lp", base_sets=sets, solver=info)
    assert plan.objective == pytest.approx(oracle_solve(est)[2], abs=1e-6)


def test_milp_reports_total_solver_failure(random_problem: Callable[..., RoutingProblem]) -> None:
    est = Estimator().estimates(random_problem(3, 4, 4, 2))
    with pytest.raises(SolverError, match="all MILP solvers failed"):
        solve_milp(est, solvers=("NOT_A_SOLVER",))


def test_scale_16_agents_60_subtasks_uses_milp(random_problem: Callable[..., RoutingProblem]) -> None:
    problem = random_problem(7, 16, 60, 3)
    problem = problem.model_copy(update={"gpu_vram_gb": 14.0})
    plan = route_exact(problem, Estimator(), method="milp")
    assert plan.solver is not None and plan.solver.name == "HIGHS" and plan.solver.status == "optimal"
    assert len(plan.assignments) == 60
    _assert_within_g(plan, problem)
    greedy = route_sync(problem, Estimator(), "greedy")
    assert plan.objective >= greedy.objective - 1e-9
    # Tight G leaves few resident sets, so `auto` takes the DP even for 16 models; it must agree with the MILP.
    auto = route_sync(problem, Estimator(), "lp")
    assert auto.solver is not None and auto.solver.name == "exact_dp"
    assert auto.objective == pytest.approx(plan.objective, abs=1e-6)


def test_loose_g_takes_the_dp_up_to_its_limits_then_the_milp(random_problem: Callable[..., RoutingProblem]) -> None:
    problem = random_problem(8, 12, 10, 2).model_copy(update={"gpu_vram_gb": 200.0})
    plan = route_sync(problem, Estimator(), "lp")  # all 4096 subsets fit: the DP's transforms handle them
    assert plan.solver is not None and plan.solver.name == "exact_dp"
    milp = route_exact(problem, Estimator(), method="milp")
    assert plan.objective == pytest.approx(milp.objective, abs=1e-6)
    assert plan.objective >= route_sync(problem, Estimator(), "greedy").objective - 1e-9
    huge = random_problem(9, 13, 10, 2).model_copy(update={"gpu_vram_gb": 500.0})  # 2^13 sets > MAX_DP_SETS
    assert fitting_sets(Estimator().estimates(huge)) is None
    plan = route_sync(huge, Estimator(), "lp")
    assert plan.solver is not None and plan.solver.name == "HIGHS"
    _assert_within_g(plan, huge)


def test_loaded_models_stay_resident_when_free(heavy: list) -> None:  # type: ignore[type-arg]
    from app.domain.models import Subtask

    problem = RoutingProblem(
        subtasks=[Subtask(id="a", task_type="code", difficulty=0.2)],
        agents=heavy,
        gpu_vram_gb=9.0,
        loaded=["gemma2:2b"],
    )
    plan = route_sync(problem, Estimator(), "lp")
    assert plan.model_for("a") == "qwen2.5-coder:7b"
    # gemma (2 GB) still fits next to qwen (6.5 GB): no eviction, it stays resident for free.
    assert plan.resident_per_step == [["gemma2:2b", "qwen2.5-coder:7b"]]
    assert [(e.model, e.step) for e in plan.loads] == [("qwen2.5-coder:7b", 0)]
    assert plan.evictions == []


def test_dp_matches_milp_on_larger_catalogs(random_problem: Callable[..., RoutingProblem]) -> None:
    compared = 0
    for seed in range(12):
        problem = random_problem(900 + seed, 9 + seed % 8, 12, 3)
        est = Estimator().estimates(problem)
        if fitting_sets(est) is None:
            continue
        try:
            dp = route_exact(problem, Estimator(), method="dp")
        except InfeasibleError:
            with pytest.raises(InfeasibleError):
                route_exact(problem, Estimator(), method="milp")
            continue
        milp = route_exact(problem, Estimator(), method="milp")
        assert dp.objective == pytest.approx(milp.objective, abs=1e-6), seed
        _assert_within_g(dp, problem)
        compared += 1
    assert compared >= 8


def test_dp_matches_milp_under_loose_g(random_problem: Callable[..., RoutingProblem]) -> None:
    # Many resident sets (hundreds to thousands): the subset/superset transforms replace the all-pairs transition.
    for seed in range(8):
        base = random_problem(1200 + seed, 9 + seed % 5, 8, 3)
        problem = base.model_copy(update={"gpu_vram_gb": sum(a.vram_gb for a in base.agents) / 2})
        est = Estimator().estimates(problem)
        tables = fitting_sets(est)
        assert tables is not None and tables[0].size > 200
        dp = route_exact(problem, Estimator(), method="dp")
        milp = route_exact(problem, Estimator(), method="milp")
        assert dp.objective == pytest.approx(milp.objective, abs=1e-6), seed
        assert evaluate_objective(problem, est, *solve_dp(est)[:2]) == pytest.approx(dp.objective, abs=1e-6)
        _assert_within_g(dp, problem)


def test_dp_broadcast_and_transform_forms_agree(
    random_problem: Callable[..., RoutingProblem], monkeypatch: pytest.MonkeyPatch
) -> None:
    from app.routing import dp

    for seed in range(25):
        rng = np.random.default_rng(seed)
        base = random_problem(1400 + seed, int(rng.integers(2, 9)), int(rng.integers(1, 9)), int(rng.integers(1, 4)))
        problem = base.model_copy(update={"gpu_vram_gb": base.gpu_vram_gb * float(rng.uniform(1, 3))})
        est = Estimator().estimates(problem)
        results = []
        for small in (0, 10**12):  # only the per-agent transforms / only the all-pairs broadcast
            monkeypatch.setattr(dp, "SMALL_CELLS", small)
            monkeypatch.setattr(dp, "SMALL_PAIRS", small)
            try:
                results.append(solve_dp(est)[2])
            except InfeasibleError:
                results.append(float("-inf"))
        assert results[0] == pytest.approx(results[1], abs=1e-9), seed
