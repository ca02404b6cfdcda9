"""Background jobs of a running service: start, follow (live event queues), cancel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from app.domain.status import JobStatus
from app.execution.jobs import create_job_row, run_job
from app.execution.results import JobResult, JobSpec
from app.execution.runtime import Runtime
from app.execution.state import GpuState
from app.storage.models import Tenant

log = logging.getLogger("swarm")
END = {"event": "__end__"}


class JobManager:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._subscribers: dict[str, list[asyncio.Queue[dict[str, Any]]]] = {}
        self._unstarted: set[str] = set()  # jobs whose runner has not run its first step yet

    def _publish(self, job_id: str, record: dict[str, Any]) -> None:
        for queue in self._subscribers.get(job_id, []):
            queue.put_nowait(record)

    async def start(
        self, tenant_id: str, gpu: GpuState, spec: JobSpec, *, tenant: Tenant | None = None, reserved: int = 0
    ) -> asyncio.Task[JobResult]:
        """Store the job row, then run it in the background. The row exists before this returns. `tenant` meters
        the job against its budget; `reserved` tokens (held at admission) are released when it settles."""
        try:
            await create_job_row(self.runtime, tenant_id, spec)
        except BaseException:
            self.runtime.usage.release(tenant_id, reserved)
            gpu.scheduler.unhold(spec.job_id)
            raise
        job_id = spec.job_id

        async def runner() -> JobResult:
            self._unstarted.discard(job_id)
            try:
                return await run_job(
                    self.runtime,
                    gpu,
                    tenant_id,
                    spec,
                    listeners=[lambda rec: self._publish(job_id, rec)],
                    tenant=tenant,
                    reserved=reserved,
                )
            finally:
                self.runtime.tasks.pop(job_id, None)
                self._publish(job_id, END)

        def never_ran(_: asyncio.Task[JobResult]) -> None:
            """Cancelled before its first step, the runner's own clean-up never ran: do it here (cancel() marks
            the row)."""
            if job_id in self._unstarted:
                self._unstarted.discard(job_id)
                self.runtime.usage.release(tenant_id, reserved)
                self.runtime.tasks.pop(job_id, None)
                self._publish(job_id, END)

        self._unstarted.add(job_id)
        task = asyncio.create_task(runner(), name=f"job:{job_id}")
        task.add_done_callback(never_ran)
        task.add_done_callback(lambda _: gpu.scheduler.unhold(job_id))  # ended before any call was dispatched
        self.runtime.tasks[job_id] = task
        return task

    def running(self, job_id: str) -> bool:
        return job_id in self.runtime.tasks

    async def cancel(self, job_id: str) -> bool:
        task = self.runtime.tasks.get(job_id)
        if task is None:
            return False
        unstarted = job_id in self._unstarted
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        if unstarted:  # cancelled before it ran at all: nothing else moves its row out of `queued`
            fields = {"status": JobStatus.CANCELLED, "error": "cancelled by request", "finished_at": time.time()}
            await asyncio.to_thread(self.runtime.repo.update_job, job_id, **fields)
        return True

    @contextlib.asynccontextmanager
    async def subscribe(self, job_id: str) -> AsyncIterator[asyncio.Queue[dict[str, Any]]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._subscribers.setdefault(job_id, []).append(queue)
        try:
            yield queue
        finally:
            subs = self._subscribers.get(job_id, [])
            if queue in subs:
                subs.remove(queue)
            if not subs:
                self._subscribers.pop(job_id, None)
