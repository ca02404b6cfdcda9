"""The routers by name: the one place a routing mode is defined; the API, CLI, settings and benchmarks read it.

Each router has one interface (`route`, async; `solve`, blocking, for the routers that need no LLM). The solver
modules are imported when a router first runs, so reading the registry (e.g. for `swarm --help`) stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, ClassVar

from pydantic import AfterValidator, WithJsonSchema

if TYPE_CHECKING:
    from app.domain.models import Plan, RoutingProblem
    from app.routing.estimator import Estimates, Estimator
    from app.routing.planner import ChatFn


@dataclass(frozen=True)
class RouteContext:
    """What some routers need beyond the problem: an LLM to plan with, an RNG seed, a fixed model."""

    chat: ChatFn | None = None
    planner_model: str | None = None
    seed: int = 0
    single_model: str | None = None
    planner_timeout_s: float = 120.0
    router_model: str | None = None  # pref_router: the trained router file
    router_tau: float = 0.5


class Router:
    """A routing mode. Subclasses set `name` and implement `solve` (blocking) or override `route` (async)."""

    name: ClassVar[str]
    summary: ClassVar[str]
    # A user may pick it (API, CLI, settings, benchmarks); the others serve tests and reports.
    selectable: ClassVar[bool] = True
    # It plans with an LLM: callers must pass RouteContext.chat, and `solve` cannot be used.
    needs_chat: ClassVar[bool] = False
    # It needs a trained model file (RouteContext.router_model): `--compare all` runs it only when one is given.
    needs_model_file: ClassVar[bool] = False

    def solve(self, problem: RoutingProblem, estimator: Estimator, ctx: RouteContext) -> Plan:
        raise ValueError(f"mode {self.name!r} needs a chat function: use `await route(..., chat=...)`")

    async def route(self, problem: RoutingProblem, estimator: Estimator, ctx: RouteContext) -> Plan:
        """Non-LLM routers solve inline (HiGHS blocks): async callers that mind the loop use a worker thread."""
        return self.solve(problem, estimator, ctx)


class ExactRouter(Router):
    name = "lp"  # the public name, kept from the original tool; the router is exact (DP or MILP), not an LP
    summary = "exact optimum of the objective: DP over resident sets, or the CVXPY + HiGHS MILP"

    def solve(self, problem: RoutingProblem, estimator: Estimator, ctx: RouteContext) -> Plan:
        from app.routing.router import route_exact

        return route_exact(problem, estimator)


class RelaxedRouter(Router):
    name = "lp_relaxed"
    summary = "the original tool's LP relaxation rounded by argmax (may break the VRAM budget; a labelled baseline)"

    def solve(self, problem: RoutingProblem, estimator: Estimator, ctx: RouteContext) -> Plan:
        from app.routing.router import route_relaxed

        return route_relaxed(problem, estimator, self.name)


class PlannerRouter(Router):
    name = "llm"
    summary = "a planner LLM decides from the same estimates (validated JSON, greedy fallback)"
    needs_chat = True

    async def route(self, problem: RoutingProblem, estimator: Estimator, ctx: RouteContext) -> Plan:
        from app.routing.planner import plan_with_llm

        if ctx.chat is None:
            raise ValueError(f"mode {self.name!r} requires a chat function")
        est = estimator.estimates(problem)
        return await plan_with_llm(
            problem, est, ctx.chat, planner_model=ctx.planner_model, timeout_s=ctx.planner_timeout_s
        )


class GreedyRouter(Router):
    name = "greedy"
    summary = "per subtask, the best-utility model that fits beside the ones already chosen"

    def assign(self, est: Estimates, ctx: RouteContext) -> list[int]:
        from app.routing.baselines import greedy_assign

        return greedy_assign(est)

    def solve(self, problem: RoutingProblem, estimator: Estimator, ctx: RouteContext) -> Plan:
        from app.routing.router import route_heuristic

        return route_heuristic(problem, estimator, self.name, lambda est: self.assign(est, ctx))


class RandomRouter(GreedyRouter):
    name = "random"
    summary = "uniform among the models that fit (seeded)"

    def assign(self, est: Estimates, ctx: RouteContext) -> list[int]:
        from app.routing.baselines import random_assign

        return random_assign(est, ctx.seed)


class SingleRouter(GreedyRouter):
    name = "single"
    summary = "every subtask on one fixed model (RouteContext.single_model)"
    selectable = False

    def assign(self, est: Estimates, ctx: RouteContext) -> list[int]:
        from app.routing.baselines import single_assign

        if ctx.single_model is None:
            raise ValueError(f"mode {self.name!r} needs single_model")
        return single_assign(est, ctx.single_model)


class PrefRouter(Router):
    name = "pref_router"
    summary = "a trained strong-vs-weak preference classifier: strong when P(strong preferred) >= tau"
    needs_model_file = True

    def solve(self, problem: RoutingProblem, estimator: Estimator, ctx: RouteContext) -> Plan:
        from app.core.errors import ValidationFailed
        from app.routing.pref_router import load_model, pref_assign
        from app.routing.router import route_heuristic

        if not ctx.router_model:
            raise ValidationFailed(f"router_model: mode {self.name!r} needs a trained router file (swarm train-router)")
        model = load_model(ctx.router_model)
        texts = [s.description for s in problem.subtasks]
        return route_heuristic(
            problem, estimator, self.name, lambda est: pref_assign(est, texts, model, ctx.router_tau)
        )


class OracleRouter(Router):
    name = "oracle"
    summary = "brute force over every assignment (tests and reports)"
    selectable = False

    def solve(self, problem: RoutingProblem, estimator: Estimator, ctx: RouteContext) -> Plan:
        from app.routing.router import route_oracle

        return route_oracle(problem, estimator, self.name)


ROUTERS: dict[str, Router] = {
    r.name: r
    for r in (ExactRouter(), RelaxedRouter(), PlannerRouter(), GreedyRouter(), RandomRouter(), PrefRouter(),
              SingleRouter(), OracleRouter())
}  # fmt: skip
ROUTING_MODES: tuple[str, ...] = tuple(ROUTERS)
SELECTABLE: tuple[str, ...] = tuple(name for name, r in ROUTERS.items() if r.selectable)
EXACT: str = ExactRouter.name
PLANNER: str = PlannerRouter.name
DEFAULT_MODE: str = EXACT
# Benchmark `--compare` groups besides single modes: the original pair, and every selectable mode.
COMPARE_GROUPS: dict[str, tuple[str, ...]] = {"both": (EXACT, PLANNER), "all": SELECTABLE}
COMPARE_CHOICES: tuple[str, ...] = (*SELECTABLE, *COMPARE_GROUPS)
DEFAULT_COMPARE = "both"


def get_router(name: str) -> Router:
    try:
        return ROUTERS[name]
    except KeyError:
        raise ValueError(f"unknown routing mode {name!r}; allowed: {', '.join(ROUTING_MODES)}") from None


def needs_chat(name: str) -> bool:
    return get_router(name).needs_chat


def needs_model_file(name: str) -> bool:
    return get_router(name).needs_model_file


def expand_compare(compare: str) -> list[str]:
    """A `--compare` value as the list of modes it runs."""
    if compare in COMPARE_GROUPS:
        return list(COMPARE_GROUPS[compare])
    if compare not in SELECTABLE:
        raise ValueError(f"unknown --compare {compare!r}; use one of {', '.join(COMPARE_CHOICES)}")
    return [compare]


def _selectable(name: str) -> str:
    if name not in SELECTABLE:
        raise ValueError(f"unknown routing mode {name!r}; allowed: {', '.join(SELECTABLE)}")
    return name


def _compare(name: str) -> str:
    expand_compare(name)
    return name


# Field types for models that name a mode (validated against the registry, listed as an enum in OpenAPI).
ModeName = Annotated[str, AfterValidator(_selectable), WithJsonSchema({"type": "string", "enum": list(SELECTABLE)})]
CompareName = Annotated[
    str, AfterValidator(_compare), WithJsonSchema({"type": "string", "enum": list(COMPARE_CHOICES)})
]
