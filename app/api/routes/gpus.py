"""GET /gpus: each GPU's capacity and resident models, the queue, and a timeline of loads and evictions with reasons."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol, runtime_checkable

from fastapi import APIRouter, Query

from app.api.deps import RuntimeDep, TenantDep
from app.backends.residency import GpuMemory
from app.core.errors import BackendError
from app.execution.runtime import Runtime
from app.execution.sched_types import scheduler_view
from app.execution.state import GpuState
from app.storage.models import TelemetryEvent

router = APIRouter(tags=["gpus"])


@runtime_checkable
class QueueSource(Protocol):
    """What a GPU scheduler offers this view: waiting work counted by model and by tenant.

    Attach one as `runtime.scheduler`; without it the queue section is present but empty (`source` null)."""

    name: str

    def queue_snapshot(self, tenant_id: str | None) -> dict[str, dict[str, int]]:
        """{"by_model": {model: n}, "by_tenant": {tenant: n}}; tenant_id None: every tenant's work."""
        ...


def queue_view(runtime: Runtime, tenant_id: str | None, gpus: list[GpuState] | None = None) -> dict[str, Any]:
    """The queued calls of the GPUs' schedulers (or of `runtime.scheduler` when one is attached there)."""
    source = getattr(runtime, "scheduler", None)
    if isinstance(source, QueueSource):
        snap = source.queue_snapshot(tenant_id)
        return {
            "by_model": dict(snap.get("by_model", {})),
            "by_tenant": dict(snap.get("by_tenant", {})),
            "source": source.name,
        }
    by_model: dict[str, int] = {}
    by_tenant: dict[str, int] = {}
    for gpu in gpus if gpus is not None else runtime.pool.all():
        snap = gpu.scheduler.queue_snapshot(tenant_id)
        for key, n in snap["by_model"].items():
            by_model[key] = by_model.get(key, 0) + n
        for key, n in snap["by_tenant"].items():
            by_tenant[key] = by_tenant.get(key, 0) + n
    return {"by_model": by_model, "by_tenant": by_tenant, "source": "scheduler"}


def scheduler_events(gpu: GpuState, limit: int) -> list[dict[str, Any]]:
    """The scheduler's own loads and evictions on this GPU, each with the queued work it served."""
    out = []
    for e in gpu.scheduler.events:
        if e.kind in ("load", "evict", "load_failed"):
            item: dict[str, Any] = {
                "ts": e.ts,
                "gpu": gpu.backend.name,
                "tenant_id": None,
                "job_id": None,
                "kind": e.kind,
                "model": e.model,
                "served": [],
                "reason": f"scheduler: {e.reason}",
            }
            if e.kind == "load":
                item["switch_ms"] = e.load_ms
            out.append(item)
    return out[-limit:] if limit else []


async def gpu_view(gpu: GpuState, tenant_names: list[str]) -> dict[str, Any]:
    """One GPU as the backend reports it now (Ollama: /api/ps); in-flight calls where the backend tracks them."""
    error = None
    try:
        resident = await gpu.refresh()
    except BackendError as exc:
        resident, error = gpu.resident, exc.message
    memory = getattr(gpu.backend, "memory", None)
    busy = memory.in_flight() if isinstance(memory, GpuMemory) else dict(gpu.scheduler.inflight)
    sched = scheduler_view(gpu.scheduler)
    used = sum(m.size_vram for m in resident) / 1e9
    return {
        "id": gpu.backend.name,
        "capacity_gb": gpu.capacity_gb,
        "used_gb": round(used, 4),
        "free_gb": round(max(0.0, gpu.capacity_gb - used), 4),
        "peak_resident_gb": round(gpu.peak_resident_gb, 4),
        "refreshed_at": gpu.refreshed_at,
        "error": error,
        "in_flight_tracked": busy is not None,
        "tenants": tenant_names,
        "scheduler": {
            "policy": sched["policy"],
            "num_parallel": sched["num_parallel"],
            "loading": sched["loading"],
            "draining": [r["model"] for r in sched["resident"] if r["draining"]],
            "queue_depth": sched["queue"]["depth"],
            "oldest_wait_s": sched["queue"]["oldest_wait_s"],
        },
        "resident": [
            {
                "name": m.name,
                "size_gb": round(m.size / 1e9, 4),
                "size_vram_gb": round(m.size_vram / 1e9, 4),
                "expires_at": m.expires_at,
                "in_flight": None if busy is None else busy.get(m.name, 0),
            }
            for m in resident
        ],
    }


def swap_events(row: TelemetryEvent, gpu_id: str) -> list[dict[str, Any]]:
    """The loads and evictions one executed plan step caused, each with the queued work it served."""
    entry = row.payload
    served: dict[str, list[str]] = {}
    for a in entry.get("executed_assignments") or []:
        served.setdefault(str(a.get("model")), []).append(str(a.get("subtask_id")))
    loaded = [str(m) for m in entry.get("models_swapped_in") or []]
    step = entry.get("step")
    base = {"ts": row.ts, "gpu": gpu_id, "tenant_id": row.tenant_id, "job_id": row.job_id, "step": step}
    out: list[dict[str, Any]] = []
    for model in loaded:
        subs = served.get(model, [])
        reason = f"runs {', '.join(subs)} of job {row.job_id} (step {step})" if subs else "planned for a later step"
        out.append({**base, "kind": "load", "model": model, "served": subs, "reason": reason})
    for model in entry.get("evictions_done") or []:
        subs = [s for m in loaded for s in served.get(m, [])]
        reason = f"made room for {', '.join(loaded)}" if loaded else "not in the plan's resident set"
        if subs:
            reason += f" (subtasks {', '.join(subs)} of job {row.job_id})"
        out.append({**base, "kind": "evict", "model": str(model), "served": subs, "reason": reason})
    if loaded or entry.get("evictions_done"):
        out[0]["switch_ms"] = entry.get("measured_switch_ms")
    return out


@router.get("/gpus")
async def gpus(ctx: TenantDep, runtime: RuntimeDep, events: int = Query(200, ge=0, le=2000)) -> dict[str, Any]:
    """The caller's GPU (the admin key: every GPU), its queue and its latest load/eviction events."""
    tenants = await asyncio.to_thread(runtime.repo.list_tenants) if ctx.is_admin else [ctx.tenant]
    bound: dict[str, list[str]] = {}
    gpu_of: dict[str, str] = {}
    for t in tenants:
        gpu = runtime.pool.get(t.backend_url, t.gpu_vram_gb) if t.backend_url else runtime.pool.default
        bound.setdefault(gpu.backend.name, []).append(t.name)
        gpu_of[t.id] = gpu.backend.name
    states = runtime.pool.all() if ctx.is_admin else [ctx.gpu]
    views = await asyncio.gather(*(gpu_view(g, bound.get(g.backend.name, [])) for g in states))  # one slow GPU at most
    rows = await asyncio.to_thread(runtime.repo.recent_events, ctx.scope, "plan_step", events)
    timeline = [e for r in rows for e in swap_events(r, gpu_of.get(r.tenant_id, runtime.pool.default.backend.name))]
    timeline += [e for g in states for e in scheduler_events(g, events)]
    timeline.sort(key=lambda e: e["ts"])
    return {
        "gpus": list(views),
        "queue": queue_view(runtime, ctx.scope, states),
        "events": timeline[-events:] if events else [],
    }
