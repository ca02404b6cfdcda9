"""/bench: start a benchmark run in the background, poll its progress and report, download its CSV and outputs."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, JSONResponse
from pydantic import Field, field_validator

from app.api.deps import RuntimeDep, TenantCtx, TenantDep
from app.api.narrowing import narrow
from app.bench.registry import list_benchmarks
from app.bench.runner import BenchConfig, BenchResult, preflight, private_sim, run_bench
from app.core.errors import NotFound, SwarmError
from app.domain.knobs import KnobOverrides
from app.domain.status import JobStatus
from app.execution.budget import JobMeter, job_estimate
from app.execution.cpu import INLINE
from app.execution.runtime import Runtime
from app.routing import Estimator
from app.routing.registry import DEFAULT_COMPARE, CompareName
from app.storage.models import BenchRun
from app.storage.repo import new_id

router = APIRouter(tags=["bench"])
log = logging.getLogger("swarm")


DATA_BENCHMARKS = {"mbpp", "mmlu", "mt_bench"}  # read their files from the service's data_dir


class BenchRequest(KnobOverrides):
    """Mirrors the `swarm bench` flags; omitted routing knobs take the service defaults, G the tenant's."""

    benchmarks: list[str] = Field(min_length=1, max_length=8)
    limit: int = Field(default=20, ge=1, le=500)
    seed: int = Field(default=0, ge=0)
    compare: CompareName = DEFAULT_COMPARE
    mix: Literal["grouped", "interleave"] = "grouped"
    code_eval: bool = False
    judge: bool = False
    judge_model: str | None = Field(default=None, max_length=200)
    dry_run: bool = False
    warm: list[str] = Field(default_factory=list, max_length=16)
    estimator_tag: str = Field(default="static", min_length=1, max_length=64)
    mtbench_judge: bool = False
    mtbench_judge_model: str | None = Field(default=None, max_length=200)

    @field_validator("benchmarks")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        known = list_benchmarks()
        for name in names:
            if name not in known:
                raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(known)}")
        return list(dict.fromkeys(names))


def to_config(body: BenchRequest, runtime: Runtime, ctx: TenantCtx, output_dir: Path) -> BenchConfig:
    s = runtime.settings
    knobs = s.routing.overridden(body)
    return BenchConfig(
        **knobs.model_dump(exclude={"mode"}),
        benchmarks=body.benchmarks,
        compare=body.compare,
        limit=body.limit,
        seed=body.seed,
        # a dry run simulates a private GPU (any G); a real run is held to the tenant's
        gpu_vram_gb=narrow(ctx.gpu_vram_gb, [], body.gpu_vram_gb, None, hypothetical=body.dry_run).gpu_vram_gb,
        mix=body.mix,
        code_eval=body.code_eval,
        judge=body.judge,
        judge_model=body.judge_model or s.models.judge,
        planner_model=s.models.planner,
        dry_run=body.dry_run,
        warm=body.warm,
        data_dir=str(s.data_dir) if set(body.benchmarks) & DATA_BENCHMARKS else None,
        estimator_tag=body.estimator_tag,
        mtbench_judge=body.mtbench_judge,
        mtbench_judge_model=body.mtbench_judge_model,
        keep_alive=s.keep_alive,
        max_concurrency=s.max_concurrency,
        time_scale=s.sim_time_scale,  # dry runs pace their private simulator like the service's
        output_dir=str(output_dir),
    )


class _Progress:
    """Jobs done / total from the runner's per-(mode, benchmark) counts (unseen cells count `limit` jobs). The
    fraction stops short of 1 until the run has succeeded: after the last job come judging and the report."""

    def __init__(self, config: BenchConfig) -> None:
        self.cells = {(m, b): (0, config.limit) for m in config.modes for b in config.benchmarks}

    def __call__(self, mode: str, benchmark: str, done: int, total: int) -> None:
        self.cells[(mode, benchmark)] = (done, total)

    @property
    def jobs(self) -> tuple[int, int]:
        return sum(d for d, _ in self.cells.values()), sum(t for _, t in self.cells.values())

    @property
    def fraction(self) -> float:
        done, total = self.jobs
        return round(min(0.99, done / total), 4) if total else 0.0

    def view(self) -> dict[str, Any]:
        done, total = self.jobs
        return {"progress": self.fraction, "jobs_done": done, "jobs_total": total, "phase": _phase(done, total)}


def _phase(done: int, total: int) -> str:
    return "jobs" if done < total else "report"


def _progress_map(runtime: Runtime) -> dict[str, Any]:
    return runtime.bench_progress


def _run_private(config: BenchConfig, ctx: TenantCtx, estimator: Estimator, progress: _Progress) -> BenchResult:
    """dry_run: a private simulated GPU with the tenant's catalog, on its own event loop in a worker thread, so
    neither the real GPU nor the service's loop (sync scoring, code_eval subprocesses) is disturbed."""
    backend = private_sim(config, ctx.agents)
    INLINE.set(True)  # this thread is the run's own: its solves and report run here, not on the shared pool
    return asyncio.run(
        run_bench(
            config,
            backend=backend,
            agents=ctx.agents,
            estimator=estimator,
            progress=progress,
            repo=ctx.runtime.repo,
            tenant_id=ctx.tenant.id,
        )
    )


async def _run(
    runtime: Runtime, ctx: TenantCtx, config: BenchConfig, progress: _Progress, meter: JobMeter | None
) -> BenchResult:
    if config.dry_run:
        snapshot = Estimator.from_dict(runtime.estimator.to_dict())
        return await runtime.bench_pool.run(_run_private, config, ctx, snapshot, progress)
    # the benchmark's calls go through the tenant's GPU scheduler, beside all other traffic
    result = await run_bench(
        config,
        backend=ctx.gpu.backend,
        agents=ctx.agents,
        estimator=runtime.estimator,
        progress=progress,
        gpu=ctx.gpu,
        repo=runtime.repo,
        tenant_id=ctx.tenant.id,
        meter=meter,
    )
    await ctx.gpu.refresh()
    if not config.freeze_estimator:  # scores on the real GPU teach the service (saved per catalog)
        runtime.estimator = Estimator.from_dict(result.trained().to_dict())
    return result


async def _execute(
    runtime: Runtime, ctx: TenantCtx, run_id: str, config: BenchConfig, meter: JobMeter | None = None
) -> None:
    try:
        # at most SWARM_BENCH_MAX_RUNNING runs execute (per tenant: _PER_TENANT); the others stay `queued`
        async with runtime.bench_slots.hold(ctx.tenant.id):
            await _execute_now(runtime, ctx, run_id, config, meter)
    except asyncio.CancelledError:
        await asyncio.to_thread(
            runtime.repo.update_bench_run, run_id, status=JobStatus.CANCELLED, finished_at=time.time()
        )
        raise
    finally:
        _progress_map(runtime).pop(run_id, None)
        runtime.tasks.pop(run_id, None)
        if meter is not None:
            meter.close()


async def _execute_now(
    runtime: Runtime, ctx: TenantCtx, run_id: str, config: BenchConfig, meter: JobMeter | None
) -> None:
    repo = runtime.repo
    progress = _Progress(config)
    _progress_map(runtime)[run_id] = progress
    await asyncio.to_thread(repo.update_bench_run, run_id, status=JobStatus.RUNNING)
    try:
        result = await _run(runtime, ctx, config, progress, meter)
    except Exception as exc:
        if isinstance(exc, SwarmError):  # a known stop (a spent budget, an upstream error): its reason, no traceback
            log.warning("bench run %s failed: %s", run_id, exc.message)
        else:
            log.exception("bench run %s failed", run_id)
        msg = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
        await asyncio.to_thread(
            repo.update_bench_run, run_id, status=JobStatus.FAILED, error=msg, finished_at=time.time()
        )
    else:
        await asyncio.to_thread(
            repo.update_bench_run,
            run_id,
            status=JobStatus.SUCCEEDED,
            progress=1.0,
            report=result.report,
            finished_at=time.time(),
        )


@router.post("/bench", status_code=202)
async def start_bench(body: BenchRequest, ctx: TenantDep, runtime: RuntimeDep) -> JSONResponse:
    if not body.dry_run:
        ctx.check_budget()
    run_id = new_id("bench")
    config = to_config(body, runtime, ctx, Path(runtime.settings.runs_dir) / "bench" / run_id)
    examples = await asyncio.to_thread(preflight, config, ctx.agents)  # bad G, warm set or missing data: 422 now
    meter = None
    if not body.dry_run:  # a real run's calls are the tenant's: reserved now, charged as they finish
        estimate = len(config.modes) * sum(job_estimate(ex.plain_subtasks()) for ex in examples)
        ctx.check_budget(reserve=estimate)
        reserved = estimate if ctx.tenant.token_budget is not None else 0
        meter = JobMeter(runtime, ctx.tenant, reserved)
    row = BenchRun(
        id=run_id,
        tenant_id=ctx.tenant.id,
        owner_id=runtime.owner_id,
        heartbeat_at=time.time(),
        status=JobStatus.QUEUED,
        config=config.model_dump(mode="json"),
        output_dir=config.output_dir,
    )
    try:
        await asyncio.to_thread(runtime.repo.create_bench_run, row)
    except BaseException:
        if meter is not None:
            meter.close()
        raise
    task = asyncio.create_task(_execute(runtime, ctx, run_id, config, meter), name=f"bench:{run_id}")
    if meter is not None:  # also when the run is cancelled before it starts
        task.add_done_callback(lambda _: meter.close())
    runtime.tasks[run_id] = task
    return JSONResponse({"id": run_id, "status": JobStatus.QUEUED}, status_code=202)


async def _get(runtime: Runtime, ctx: TenantCtx, run_id: str) -> BenchRun:
    run = await asyncio.to_thread(runtime.repo.get_bench_run, ctx.scope, run_id)
    if run is None:
        raise NotFound(f"bench run {run_id!r} not found")
    return run


def _progress_of(runtime: Runtime, run: BenchRun) -> float:
    live = _progress_map(runtime).get(run.id)
    return live.fraction if live is not None and run.status == JobStatus.RUNNING else run.progress


@router.get("/bench")
async def list_bench(ctx: TenantDep, runtime: RuntimeDep, limit: int = Query(50, ge=1, le=200)) -> dict[str, Any]:
    """The caller's runs, newest first (the admin key: every tenant's), with live progress; no reports."""
    rows = await asyncio.to_thread(runtime.repo.list_bench_runs, ctx.scope, limit)
    keys = ("benchmarks", "compare", "limit", "seed", "gpu_vram_gb", "dry_run")
    items = [
        {
            "id": r.id,
            "tenant_id": r.tenant_id,
            "status": r.status,
            "progress": _progress_of(runtime, r),
            "config": {k: r.config.get(k) for k in keys},
            "error": r.error,
            "created_at": r.created_at,
            "finished_at": r.finished_at,
        }
        for r in rows
    ]
    return {"items": items}


@router.get("/bench/{run_id}")
async def get_bench(run_id: str, ctx: TenantDep, runtime: RuntimeDep) -> dict[str, Any]:
    run = await _get(runtime, ctx, run_id)
    live = _progress_map(runtime).get(run_id)
    if live is not None and run.status == JobStatus.RUNNING:
        progress = live.view()
    else:  # queued, or finished: the stored fraction; job counts only while the run is live
        progress = {"progress": run.progress, "jobs_done": None, "jobs_total": None, "phase": None}
    return {
        "id": run.id,
        "tenant_id": run.tenant_id,
        "status": run.status,
        **progress,
        "config": run.config,
        "error": run.error,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "report": run.report if run.status == JobStatus.SUCCEEDED else None,
    }


async def _file(runtime: Runtime, ctx: TenantCtx, run_id: str, name: str, media_type: str) -> FileResponse:
    run = await _get(runtime, ctx, run_id)
    path = Path(run.output_dir or "") / name
    if run.status != JobStatus.SUCCEEDED or not path.is_file():
        raise NotFound(f"bench run {run_id!r} has no {name} yet (status {run.status})")
    return FileResponse(path, media_type=media_type, filename=f"{run_id}_{name}")


@router.get("/bench/{run_id}/report.csv")
async def get_report_csv(run_id: str, ctx: TenantDep, runtime: RuntimeDep) -> FileResponse:
    return await _file(runtime, ctx, run_id, "report.csv", "text/csv")


@router.get("/bench/{run_id}/outputs.jsonl")
async def get_outputs(run_id: str, ctx: TenantDep, runtime: RuntimeDep) -> FileResponse:
    return await _file(runtime, ctx, run_id, "outputs.jsonl", "application/x-ndjson")
