"""Turns an assignment (+ optional resident sets) into a Plan, scored by the one shared objective."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from app.core.errors import InfeasibleError
from app.domain.models import Assignment, ModelEvent, Plan, PlannerInfo, RoutingProblem, SolverInfo
from app.routing.estimator import Estimates

_EPS = 1e-9


def used_per_step(est: Estimates, assignment: Sequence[int]) -> list[frozenset[int]]:
    used: list[set[int]] = [set() for _ in range(est.n_steps)]
    for m, i in enumerate(assignment):
        used[int(est.steps[m])].add(int(i))
    return [frozenset(s) for s in used]


def loaded_set(est: Estimates) -> frozenset[int]:
    return frozenset(int(i) for i in est.loaded.nonzero()[0])


def evaluate_objective(
    problem: RoutingProblem,
    est: Estimates,
    assignment: Sequence[int],
    resident_sets: Sequence[Collection[int]],
) -> float:
    """The MILP objective: sum of U[a(m), m] minus λ_switch * C_sw for every model entering a resident set.

    Every mode is scored with this function so that oracle gaps compare like with like.
    """
    del problem  # the estimates already carry everything; kept in the signature for callers' clarity
    total = sum(float(est.utility_base[int(i), m]) for m, i in enumerate(assignment))
    prev: Collection[int] = loaded_set(est)
    for current in resident_sets:
        total -= est.lambda_switch * sum(float(est.switch_cost_raw[i]) for i in current if i not in prev)
        prev = current
    return total


def carry_over(est: Estimates, base: Sequence[frozenset[int]], assignment: Sequence[int]) -> list[frozenset[int]]:
    """Ollama-like residency: a model stays resident after its step while it still fits next to what runs.

    Kept models are chosen soonest-needed first, then by catalog order. Keeping a model that is already resident
    never adds a load and can only save one later, so this never lowers the objective of an optimal plan.
    """
    # next_use[t][i]: first step >= t at which agent i runs (inf if never).
    next_use = [[float("inf")] * len(est.agents) for _ in range(est.n_steps + 1)]
    runs = used_per_step(est, assignment)
    for t in range(est.n_steps - 1, -1, -1):
        next_use[t] = list(next_use[t + 1])
        for i in runs[t]:
            next_use[t][i] = float(t)
    out: list[frozenset[int]] = []
    prev = loaded_set(est)
    for t, current in enumerate(base):
        keep = set(current)
        size = sum(float(est.vram[i]) for i in keep)
        for i in sorted(prev - keep, key=lambda k: (next_use[t + 1][k], k)):
            if size + est.vram[i] <= est.gpu_vram_gb + _EPS:
                keep.add(i)
                size += float(est.vram[i])
        out.append(frozenset(keep))
        prev = out[-1]
    return out


def build_plan(
    problem: RoutingProblem,
    est: Estimates,
    assignment: Sequence[int],
    *,
    mode: str,
    routing_source: str,
    base_sets: Sequence[frozenset[int]] | None = None,
    solver: SolverInfo | None = None,
    fallback_reason: str | None = None,
    planner: PlannerInfo | None = None,
    violation_gb: float | None = None,
) -> Plan:
    """base_sets default to the models each step runs; carry_over then keeps what still fits."""
    sets = carry_over(est, base_sets or used_per_step(est, assignment), assignment)
    names = est.agents
    loads: list[ModelEvent] = []
    evictions: list[ModelEvent] = []
    prev = loaded_set(est)
    for t, current in enumerate(sets):
        loads += [ModelEvent(model=names[i], step=t) for i in sorted(current - prev)]
        evictions += [ModelEvent(model=names[i], step=t) for i in sorted(prev - current)]
        prev = current
    assignments = _assignments(est, assignment, {(est.agents.index(e.model), e.step) for e in loads})
    peak = max((sum(float(est.vram[i]) for i in s) for s in sets), default=0.0)
    violation = max(0.0, peak - est.gpu_vram_gb) if violation_gb is None else violation_gb
    return Plan(
        mode=mode,
        assignments=assignments,
        resident_per_step=[[names[i] for i in sorted(s)] for s in sets],
        loads=loads,
        evictions=evictions,
        vram_peak_gb=peak,
        vram_violation_gb=violation if violation > _EPS else 0.0,
        objective=evaluate_objective(problem, est, assignment, sets),
        solver=solver,
        routing_source=routing_source,
        fallback_reason=fallback_reason,
        planner=planner,
        model_task_estimates=est.to_rows(),
    )


def _assignments(est: Estimates, assignment: Sequence[int], charged: set[tuple[int, int]]) -> list[Assignment]:
    """Per-subtask rows; a load is charged to the first subtask that runs on the model in its loading step."""
    rows: list[Assignment] = []
    for m, i in enumerate(assignment):
        t = int(est.steps[m])
        sw = float(est.switch_cost_raw[i]) if (i, t) in charged else 0.0
        charged.discard((i, t))
        rows.append(
            Assignment(
                subtask_id=est.subtask_ids[m],
                model=est.agents[i],
                step=t,
                estimated_quality=float(est.quality[i, m]),
                token_cost=float(est.token_cost[i, m]),
                switch_cost=sw,
                utility=float(est.utility_base[i, m]) - est.lambda_switch * sw,
            )
        )
    return rows


def infeasible(est: Estimates, reason: str) -> InfeasibleError:
    """The typed error every exact router raises: names G and the smallest model with its VRAM."""
    k = int(est.vram.argmin())
    return InfeasibleError(
        f"no feasible routing under G={est.gpu_vram_gb:g} GB: {reason}; "
        f"the smallest model is {est.agents[k]} ({est.vram[k]:g} GB)"
    )


def precheck(est: Estimates) -> None:
    """Fail fast, with a clear message, on the infeasibilities a solver would only report as a status."""
    if not (est.vram <= est.gpu_vram_gb + _EPS).any():
        raise infeasible(est, "no model fits in GPU memory")
    for m in range(len(est.subtask_ids)):
        if not est.feasible[:, m].any():
            raise infeasible(est, f"subtask {est.subtask_ids[m]!r} fits no model (context too long or model too large)")
