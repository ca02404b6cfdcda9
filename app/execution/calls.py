"""A job's model calls through its GPU's scheduler: candidates (a planned model, or any capable model for helper
calls), the `queued` / `dispatched` events, and the job's start at its first dispatched call."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app.core.errors import InfeasibleError
from app.domain.models import Agent
from app.domain.status import JobStatus
from app.execution.sched_plan import ModelSpec
from app.execution.sched_types import CallRequest
from app.execution.scheduler import Lease

if TYPE_CHECKING:
    from app.execution.lifecycle import JobLifecycle
    from app.execution.state import GpuState
    from app.execution.telemetry import Recorder

# A helper call (decomposer, planner, synthesiser) may run on any model; its own preference weighs this much.
PREFERRED_BONUS = 0.2


def catalog_specs(agents: list[Agent]) -> dict[str, ModelSpec]:
    return {a.name: ModelSpec(a.vram_gb, a.load_time_ms, a.tokens_per_s) for a in agents}


def helper_candidates(
    agents: list[Agent],
    task_type: str,
    preferred: str | None,
    explicit: str | None,
    *,
    fits_gb: float,
) -> dict[str, float]:
    """An explicitly configured helper model is the only candidate; otherwise every catalog model that fits the
    budget, scored by its capability for the helper's task. The scheduler charges the switch cost of a model that
    is not resident, so a resident model nearly as capable does the job instead of forcing a load."""
    if explicit:
        return {explicit: 1.0}

    def score(a: Agent) -> float:
        return a.capability(task_type) + (PREFERRED_BONUS if a.name == preferred else 0.0)

    scored = {a.name: score(a) for a in agents if a.vram_gb <= fits_gb + 1e-9}
    if not scored:
        smallest = min(agents, key=lambda a: a.vram_gb)
        raise InfeasibleError(
            f"no feasible routing under G={fits_gb:g} GB: no model fits in GPU memory; "
            f"the smallest model is {smallest.name} ({smallest.vram_gb:g} GB)"
        )
    return dict(sorted(scored.items(), key=lambda kv: -kv[1]))


class JobCalls:
    def __init__(self, gpu: GpuState, recorder: Recorder, life: JobLifecycle, job_id: str, agents: list[Agent]):
        self.gpu = gpu
        self.rec = recorder
        self.life = life
        self.job_id = job_id
        self.specs = catalog_specs(agents)

    async def lease(self, candidates: dict[str, float], *, kind: str, label: str, est_tokens: int = 256) -> Lease:
        req = CallRequest(
            tenant=self.rec.tenant_id,
            candidates=candidates,
            specs=self.specs,
            kind=kind,
            est_tokens=est_tokens,
            label=label,
            job=self.job_id,
        )
        # Events are written in the background: a database write in a worker thread never decides the order in
        # which a job's calls reach the scheduler (same-seed benchmarks stay identical).
        self.rec.event_soon("queued", self.job_id, {"call": label, "kind": kind, "candidates": list(candidates)})
        lease = await self.gpu.scheduler.acquire(req)
        if self.life.status == JobStatus.QUEUED:
            self.life.start_soon()
        payload = {"call": label, "kind": kind, "model": lease.model, "waited_s": round(lease.waited_s, 4)}
        self.rec.event_soon("dispatched", self.job_id, payload)
        return lease
