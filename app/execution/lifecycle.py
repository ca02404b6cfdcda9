"""The one owner of a job's status: each change is checked against domain/status.py's transitions, then recorded
(the job row and the telemetry listeners). Subtask statuses move through SubtaskResult.move, checked the same way."""

from __future__ import annotations

import logging
import time
from typing import Any

from app.domain.status import JobStatus, job_transition
from app.execution.telemetry import Recorder

log = logging.getLogger("swarm")


class JobLifecycle:
    def __init__(self, recorder: Recorder, job_id: str, status: JobStatus = JobStatus.QUEUED) -> None:
        self.rec = recorder
        self.job_id = job_id
        self.status = status

    async def start(self) -> None:
        self.status = job_transition(self.status, JobStatus.RUNNING)
        await self.rec.update_job(self.job_id, status=self.status, started_at=time.time())

    def start_soon(self) -> None:
        """`start` with the row written in the background (`finish` writes after it: Recorder.drain)."""
        self.status = job_transition(self.status, JobStatus.RUNNING)
        self.rec.soon(self.rec.update_job(self.job_id, status=self.status, started_at=time.time()))

    async def finish(self, status: JobStatus, **fields: Any) -> None:
        """A terminal status (succeeded, failed, cancelled) with the job's outcome fields."""
        self.status = job_transition(self.status, status)
        await self.rec.drain()  # a background start (or event) is written before the outcome
        try:
            await self.rec.update_job(self.job_id, status=self.status, finished_at=time.time(), **fields)
        except Exception as exc:  # an outcome the database refuses: the job still ends (never `running` forever)
            log.exception("could not record the outcome of job %s", self.job_id)
            reason = f"the job's outcome could not be recorded: {type(exc).__name__}: {exc}"[:500]
            if self.status == JobStatus.SUCCEEDED:
                self.status = JobStatus.FAILED
            await self.rec.update_job(self.job_id, status=self.status, finished_at=time.time(), error=reason)
