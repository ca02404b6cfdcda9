"""POST /route: the routing decision only, no execution."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter

from app.api.deps import RuntimeDep, TenantCtx, TenantDep
from app.api.schemas import RouteRequest, RoutingKnobs
from app.domain.models import Plan, RoutingParams, RoutingProblem
from app.execution.dag import TaskDAG
from app.execution.llm import bind_chat
from app.execution.runtime import Runtime
from app.routing import route, route_sync

router = APIRouter(tags=["routing"])


def routing_params(runtime: Runtime, body: RoutingKnobs) -> RoutingParams:
    d = runtime.settings.routing
    return RoutingParams(
        lambda_token=d.lambda_token if body.lambda_token is None else body.lambda_token,
        lambda_switch=d.lambda_switch if body.lambda_switch is None else body.lambda_switch,
        token_scale=body.token_scale or d.token_scale,
        switch_t_scale_ms=body.switch_t_scale_ms or d.switch_t_scale_ms,
    )


@router.post("/route")
async def post_route(body: RouteRequest, ctx: TenantDep, runtime: RuntimeDep) -> dict[str, Any]:
    dag = TaskDAG(body.subtasks)
    depth = len(dag.layers()) if body.horizon_depth is None else body.horizon_depth
    horizon = dag.horizon([], depth)
    agents = body.agents or ctx.agents
    if body.loaded_models is None:
        await ctx.gpu.refresh()
        loaded = ctx.gpu.loaded_names
    else:
        loaded = body.loaded_models
    names = {a.name for a in agents}
    problem = RoutingProblem(
        subtasks=[dag.nodes[s] for s in horizon],
        step_of=horizon,
        agents=agents,
        gpu_vram_gb=body.gpu_vram_gb or ctx.gpu_vram_gb,
        loaded=[m for m in loaded if m in names],
        params=routing_params(runtime, body),
    )
    mode = body.routing or runtime.settings.routing.mode
    plan = await _decide(runtime, ctx, problem, mode, body.seed)
    return plan_response(plan, [s for s in dag.nodes if s not in horizon])


async def _decide(runtime: Runtime, ctx: TenantCtx, problem: RoutingProblem, mode: str, seed: int) -> Plan:
    if mode == "llm":
        model = runtime.settings.models.planner or min(problem.agents, key=lambda a: a.vram_gb).name
        chat = bind_chat(ctx.gpu.backend, model, runtime.settings.keep_alive)
        return await route(problem, runtime.estimator, "llm", chat=chat, planner_model=model, seed=seed)
    return await asyncio.to_thread(route_sync, problem, runtime.estimator, mode, seed=seed)


def plan_response(plan: Plan, beyond_horizon: list[str]) -> dict[str, Any]:
    out = plan.model_dump()
    out["routing"] = out.pop("mode")
    out["beyond_horizon"] = beyond_horizon
    return out
