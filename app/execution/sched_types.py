"""The scheduler's records: a call to schedule, a queued call waiting for its lease, and what the scheduler did."""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from app.execution.sched_plan import ModelSpec

if TYPE_CHECKING:
    from app.execution.scheduler import Lease

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
