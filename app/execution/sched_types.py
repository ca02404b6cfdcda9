"""The scheduler's records (a call to schedule, a queued call waiting for its lease, what the scheduler did) and the
views of its queue that /gpus and the dashboard show."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from app.execution.sched_plan import ModelSpec

if TYPE_CHECKING:
    from app.execution.scheduler import GpuScheduler, Lease

_ids = itertools.count(1)


@dataclass
class CallRequest:
    """One model call to schedule. `candidates` maps model -> utility (one entry: an explicit model)."""

    tenant: str
    candidates: dict[str, float]
    specs: dict[str, ModelSpec] = field(default_factory=dict)  # the caller's catalog entries, where known
    kind: str = "proxy"  # proxy | job | helper | bench
    est_tokens: int = 256
    weight: float = 1.0
    label: str = ""
    job: str = ""  # the job it belongs to (its first dispatch ends the job's place in the admission bounds)


@dataclass
class Waiter:
    req: CallRequest
    future: asyncio.Future[Lease]
    arrival: float
    id: int = field(default_factory=lambda: next(_ids))


@dataclass
class SchedEvent:
    """A load, eviction or dispatch, with why (for /gpus, metrics and telemetry)."""

    kind: str
    model: str
    at: float
    reason: str = ""
    tenant: str = ""
    waited_s: float = 0.0
    load_ms: float = 0.0
    ts: float = field(default_factory=time.time)  # wall clock, for timelines


def queue_counts(queue: list[Waiter], tenant_id: str | None) -> dict[str, dict[str, int]]:
    """Queued calls by (first-choice) model and by tenant; with `tenant_id`, that tenant's only."""
    by_model: Counter[str] = Counter()
    by_tenant: Counter[str] = Counter()
    for w in queue:
        if tenant_id is None or w.req.tenant == tenant_id:
            by_model[next(iter(w.req.candidates))] += 1
            by_tenant[w.req.tenant] += 1
    return {"by_model": dict(by_model), "by_tenant": dict(by_tenant)}


def scheduler_view(s: GpuScheduler) -> dict[str, Any]:
    """What GET /gpus shows of one GPU: resident models with their calls in flight, the queue, recent events."""
    now = s.clock()
    return {
        "policy": s.cfg.policy,
        "capacity_gb": s.capacity_gb,
        "num_parallel": s.cfg.num_parallel,
        "resident": [
            {"model": m, "size_gb": round(gb, 4), "in_flight": s.inflight[m], "draining": m in s.draining}
            for m, gb in sorted(s.resident.items())
        ],
        "loading": sorted(s.loading),
        "queue": {
            "depth": len(s.queue),
            **queue_counts(s.queue, None),
            "oldest_wait_s": round(max((now - w.arrival for w in s.queue), default=0.0), 3),
        },
        "events": [vars(e) for e in s.events[-50:]],
    }


def one_spelling(name: str, known: Callable[[str], bool]) -> str:
    """One spelling per model: Ollama reads a name without a tag as name:latest, so `llama3.1` and
    `llama3.1:latest` are one model, under the spelling already `known` (the catalog's, or /api/ps's)."""
    if known(name):
        return name
    other = name.removesuffix(":latest") if name.endswith(":latest") else None if ":" in name else f"{name}:latest"
    return other if other is not None and known(other) else name
