"""POST /route: the routing decision only, no execution."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.deps import RuntimeDep, TenantCtx, TenantDep
from app.api.narrowing import check_size, narrow
from app.api.schemas import RouteRequest
from app.domain.knobs import KnobOverrides, RoutingKnobs
from app.domain.models import Plan, RoutingProblem
from app.execution.dag import TaskDAG
from app.execution.llm import bind_chat
from app.execution.runtime import Runtime
from app.routing import route, route_sync
from app.routing.registry import needs_chat

router = APIRouter(tags=["routing"])


def request_knobs(runtime: Runtime, body: KnobOverrides) -> RoutingKnobs:
    """The service's routing knobs with the request's own values on top."""
    return runtime.settings.routing.overridden(body)


@router.post("/route")
async def post_route(body: RouteRequest, ctx: TenantDep, runtime: RuntimeDep) -> dict[str, Any]:
    dag = TaskDAG(body.subtasks)
    knobs = request_knobs(runtime, body)
    depth = len(dag.layers()) if body.horizon_depth is None else knobs.horizon_depth
    horizon = dag.horizon([], depth)
    allowed = narrow(ctx.gpu_vram_gb, ctx.agents, body.gpu_vram_gb, body.agents, hypothetical=body.hypothetical)
    check_size(len(allowed.agents), len(dag.nodes), runtime.settings.route_max_cells)
    agents = allowed.agents
    skipped: list[str] = []
    if body.loaded_models is None:  # a decision for the real GPU: only what it has installed is routable
        rec = await runtime.catalog.current(ctx.gpu.backend, agents)
        if rec.none_installed:
            raise rec.no_model_error(ctx.gpu.backend.name)
        agents, skipped = rec.routable, rec.missing
        await ctx.gpu.refresh()
        loaded = ctx.gpu.loaded_names
    else:
        loaded = body.loaded_models
    names = {a.name for a in agents}
    problem = RoutingProblem(
        subtasks=[dag.nodes[s] for s in horizon],
        step_of=horizon,
        agents=agents,
        gpu_vram_gb=allowed.gpu_vram_gb,
        loaded=[m for m in loaded if m in names],
        params=knobs.params,
    )
    mode = body.routing or runtime.settings.routing.mode
    plan = await _decide(runtime, ctx, problem, mode, body.seed)
    out = {**plan_response(plan, [s for s in dag.nodes if s not in horizon]), "skipped_models": skipped}
    out["hypothetical"] = body.hypothetical
    return out


async def _decide(runtime: Runtime, ctx: TenantCtx, problem: RoutingProblem, mode: str, seed: int) -> Plan:
    if needs_chat(mode):
        model = runtime.settings.models.planner or min(problem.agents, key=lambda a: a.vram_gb).name
        chat = bind_chat(ctx.gpu.backend, model, runtime.settings.keep_alive)
        return await route(problem, runtime.estimator, mode, chat=chat, planner_model=model, seed=seed)
    return await runtime.cpu.run(route_sync, problem, runtime.estimator, mode, seed=seed)


def plan_response(plan: Plan, beyond_horizon: list[str]) -> dict[str, Any]:
    out = plan.model_dump()
    out["routing"] = out.pop("mode")
    out["beyond_horizon"] = beyond_horizon
    return out
