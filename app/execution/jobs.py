"""Job creation shared by the CLI and the API: rows first (so nothing is lost), then the orchestrator."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from app.domain.knobs import RoutingKnobs
from app.domain.models import Agent, Subtask
from app.domain.status import JobStatus
from app.execution.budget import JobMeter
from app.execution.orchestrator import Orchestrator
from app.execution.results import JobResult, JobSpec
from app.execution.runtime import Runtime
from app.execution.state import GpuState
from app.execution.telemetry import Recorder
from app.storage.models import Job, Tenant
from app.storage.repo import new_id


def make_spec(
    runtime: Runtime,
    *,
    query: str | None = None,
    subtasks: list[Subtask] | None = None,
    agents: list[Agent] | None = None,
    mode: str | None = None,
    knobs: RoutingKnobs | None = None,
    gpu_vram_gb: float | None = None,
    job_id: str | None = None,
    seed: int = 0,
) -> JobSpec:
    cfg = runtime.settings
    knobs = knobs or cfg.routing
    return JobSpec(
        job_id=job_id or new_id("job"),
        agents=agents or runtime.agents,
        query=query,
        subtasks=subtasks,
        mode=mode or cfg.routing.mode,
        params=knobs.params,
        horizon_depth=knobs.horizon_depth,
        gpu_vram_gb=gpu_vram_gb,
        planner_model=cfg.models.planner,
        decomposer_model=cfg.models.decomposer,
        synth_model=cfg.models.synthesizer,
        seed=seed,
        plan_source="given" if subtasks else "decomposer",
    )


async def create_job_row(runtime: Runtime, tenant_id: str, spec: JobSpec) -> Job:
    job = Job(
        id=spec.job_id,
        tenant_id=tenant_id,
        owner_id=runtime.owner_id,
        heartbeat_at=time.time(),
        status=JobStatus.QUEUED,
        query=spec.query,
        routing=spec.mode,
        spec={
            "query": spec.query,
            "subtasks": [s.model_dump() for s in spec.subtasks or []],
            "mode": spec.mode,
            "params": spec.params.model_dump(),
            "horizon_depth": spec.horizon_depth,
            "gpu_vram_gb": spec.gpu_vram_gb,
            "agents": [a.name for a in spec.agents],
        },
    )
    return await asyncio.to_thread(runtime.repo.create_job, job)


async def run_job(
    runtime: Runtime,
    gpu: GpuState,
    tenant_id: str,
    spec: JobSpec,
    *,
    jsonl_path: Path | None = None,
    listeners: list[Any] | None = None,
    tenant: Tenant | None = None,
    reserved: int = 0,
) -> JobResult:
    """Run a stored job. With `tenant`, its calls are charged as they finish and the job stops when the tenant's
    budget is spent; `reserved` tokens held at admission are released when the job settles."""
    recorder = Recorder(runtime.repo, tenant_id, jsonl_path)
    recorder.listeners.extend(listeners or [])
    meter = JobMeter(runtime, tenant, reserved) if tenant is not None else None
    if meter is not None:
        recorder.listeners.append(meter)  # last: the other listeners see the event that exhausts the budget
    orch = Orchestrator(
        gpu,
        runtime.estimator,
        recorder,
        keep_alive=runtime.settings.keep_alive,
        max_concurrency=runtime.settings.max_concurrency,
    )
    if meter is not None:
        try:
            return await orch.run(spec)
        finally:
            # Charged as they finished; what no event charged yet (a call cut by a cancel or by the budget's stop
            # counts its estimate) is charged now, once per call; the rest of the reservation goes back.
            meter.settle(orch.ledger())
            meter.close()
    try:
        result = await orch.run(spec)
    except asyncio.CancelledError:
        spent = orch.tokens_spent()
        if spent > 0:
            runtime.tenants.add_tokens(tenant_id, spent)
            runtime.usage.add_id(tenant_id, spent)
        raise
    finally:
        runtime.usage.release(tenant_id, reserved)
    await runtime.charge(tenant_id, orch.tokens_spent())
    return result
