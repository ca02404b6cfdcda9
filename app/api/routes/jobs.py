"""/jobs: submit (wait or 202), poll, list, follow as SSE, cancel."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse

from app.api.deps import JobsDep, RuntimeDep, TenantDep
from app.api.narrowing import check_size, narrow
from app.api.routes.route import request_knobs
from app.api.schemas import JobRequest
from app.core.errors import NotFound, ValidationFailed
from app.domain.status import JobStatus
from app.execution.budget import job_estimate
from app.execution.dag import TaskDAG
from app.execution.jobs import make_spec
from app.execution.manager import END
from app.execution.runtime import Runtime
from app.routing.registry import needs_chat
from app.storage.models import Job

router = APIRouter(tags=["jobs"])


def job_view(runtime: Runtime, job: Job) -> dict[str, Any]:
    subtasks = runtime.repo.subtasks(job.id)
    steps = runtime.repo.plan_steps(job.id)
    return {
        "id": job.id,
        "tenant_id": job.tenant_id,
        "status": job.status,
        "query": job.query,
        "routing": job.routing,
        "plan_source": job.plan_source,
        "error": job.error,
        "final_answer": job.final_answer,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "wall_ms": job.wall_ms,
        "total_tokens": job.total_tokens,
        "summary": job.summary,
        "subtasks": [s.model_dump(exclude={"id", "job_id"}) for s in subtasks],
        "plan": [p.model_dump(exclude={"id", "job_id"}) for p in steps],
    }


async def _load(runtime: Runtime, tenant_id: str | None, job_id: str) -> Job:
    job = await asyncio.to_thread(runtime.repo.get_job, tenant_id, job_id)
    if job is None:
        raise NotFound(f"job {job_id!r} not found")
    return job


@router.post("/jobs", status_code=202)
async def submit(
    body: JobRequest, ctx: TenantDep, runtime: RuntimeDep, jobs: JobsDep, wait: bool = False
) -> JSONResponse:
    ctx.check_budget()
    ctx.gpu.scheduler.admit(ctx.tenant.id)  # 429 / 503 with Retry-After while the GPU's queue is full
    if body.subtasks:
        TaskDAG(body.subtasks)  # reject cycles / unknown deps before anything is stored
    allowed = narrow(ctx.gpu_vram_gb, ctx.agents, body.gpu_vram_gb, body.agents)
    if body.subtasks:
        check_size(len(allowed.agents), len(body.subtasks), runtime.settings.route_max_cells)
    rec = await runtime.catalog.current(ctx.gpu.backend, allowed.agents)
    if rec.none_installed:
        raise rec.no_model_error(ctx.gpu.backend.name)
    agents = rec.routable  # catalog models that are not installed are not routable
    names = {a.name for a in agents}
    planner = runtime.settings.models.planner
    if planner and body.routing is not None and needs_chat(body.routing) and planner not in names:
        raise ValidationFailed(f"planner model {planner!r} is not in the agent catalog")
    spec = make_spec(
        runtime,
        query=body.query,
        subtasks=body.subtasks,
        agents=agents,
        mode=body.routing,
        knobs=request_knobs(runtime, body),
        gpu_vram_gb=allowed.gpu_vram_gb,
        seed=body.seed,
    )
    estimate = job_estimate(spec.subtasks)
    # The queue bounds again, now holding the job's place until its first call is dispatched, and the budget
    # again, atomically with its reservation (no await between these and the job's start).
    ctx.gpu.scheduler.admit(ctx.tenant.id, job=spec.job_id)
    try:
        ctx.check_budget(reserve=estimate)
    except Exception:
        ctx.gpu.scheduler.unhold(spec.job_id)
        raise
    task = await jobs.start(ctx.tenant.id, ctx.gpu, spec, tenant=ctx.tenant, reserved=estimate)
    if wait:
        await asyncio.shield(task)
        job = await _load(runtime, ctx.tenant.id, spec.job_id)
        view = await asyncio.to_thread(job_view, runtime, job)
        return JSONResponse({**view, "skipped_models": rec.missing}, 200)
    links = {"self": f"/jobs/{spec.job_id}", "events": f"/jobs/{spec.job_id}/events"}
    queued = {"id": spec.job_id, "status": JobStatus.QUEUED, "links": links, "skipped_models": rec.missing}
    return JSONResponse(queued, 202)


@router.get("/jobs")
async def list_jobs(
    ctx: TenantDep,
    runtime: RuntimeDep,
    status: JobStatus | None = None,
    limit: int = Query(50, ge=1, le=200),
    offset: int = Query(0, ge=0, le=10**9),
) -> dict[str, Any]:
    rows, total = await asyncio.to_thread(runtime.repo.list_jobs, ctx.scope, status, offset, limit)
    items = [
        {
            k: getattr(j, k)
            for k in ("id", "tenant_id", "status", "query", "routing", "error", "created_at", "finished_at")
        }
        for j in rows
    ]
    return {"items": items, "total": total, "limit": limit, "offset": offset}


@router.get("/jobs/{job_id}")
async def get_job(job_id: str, ctx: TenantDep, runtime: RuntimeDep) -> dict[str, Any]:
    job = await _load(runtime, ctx.scope, job_id)
    return await asyncio.to_thread(job_view, runtime, job)


@router.delete("/jobs/{job_id}")
async def cancel_job(job_id: str, ctx: TenantDep, runtime: RuntimeDep, jobs: JobsDep) -> JSONResponse:
    job = await _load(runtime, ctx.scope, job_id)
    if not await jobs.cancel(job_id):
        body = {
            "error": {
                "message": f"job {job_id!r} is not running (status {job.status})",
                "type": "conflict",
                "code": "not_running",
            }
        }
        return JSONResponse(body, 409)
    job = await _load(runtime, ctx.scope, job_id)
    return JSONResponse({"id": job_id, "status": job.status})


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


@router.get("/jobs/{job_id}/events")
async def job_events(
    job_id: str, request: Request, ctx: TenantDep, runtime: RuntimeDep, jobs: JobsDep
) -> StreamingResponse:
    """Server-sent events: everything recorded so far, then live events, ending with the final job."""
    await _load(runtime, ctx.scope, job_id)
    mgr = jobs

    async def stream() -> AsyncIterator[bytes]:
        async with mgr.subscribe(job_id) as queue:
            past = await asyncio.to_thread(lambda: list(runtime.repo.iter_events(ctx.scope, job_id=job_id)))
            seen = {(e.event_type, e.ts) for e in past}
            for e in past:
                yield _sse(e.event_type, {"ts": e.ts, "job_id": job_id, **e.payload})
            # Drain what was published before the job ended too: it may end between subscribing and this check.
            while mgr.running(job_id) or not queue.empty():
                record = await queue.get()
                if record is END:
                    break
                if (record["event"], record["ts"]) not in seen:
                    yield _sse(record["event"], record)
            job = await _load(runtime, ctx.scope, job_id)
            yield _sse("end", await asyncio.to_thread(job_view, runtime, job))

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
