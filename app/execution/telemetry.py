"""Recorder: every job, plan step, subtask and routing decision as rows, events, JSONL lines and live listeners."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.storage.models import PlanStepRecord, SubtaskRecord, TelemetryEvent
from app.storage.repo import Repo

Listener = Callable[[dict[str, Any]], None]


class Recorder:
    """Fans one event out to SQLite (rows + append-only log), an optional JSONL file and listeners (SSE).

    DB writes run in a worker thread: the event loop never blocks on SQLite.
    """

    def __init__(
        self,
        repo: Repo | None,
        tenant_id: str,
        jsonl_path: Path | None = None,
        *,
        events_only: bool = False,
        tags: dict[str, Any] | None = None,
    ) -> None:
        # events_only: benchmark jobs have no `jobs` row, so only the event log (not job/subtask rows) is written;
        # tags are added to every event's payload (e.g. the bench run the job belongs to).
        self.repo = repo
        self.tenant_id = tenant_id
        self.jsonl_path = jsonl_path
        self.rows_repo = None if events_only else repo
        self.tags = dict(tags or {})
        self.listeners: list[Listener] = []
        if jsonl_path is not None:
            jsonl_path.parent.mkdir(parents=True, exist_ok=True)

    async def _db(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        if self.repo is not None:
            await asyncio.to_thread(fn, *args, **kwargs)

    async def event(self, event_type: str, job_id: str | None, payload: dict[str, Any]) -> None:
        ts = time.time()
        payload = {**self.tags, **payload} if self.tags else payload
        record = {"ts": ts, "event": event_type, "job_id": job_id, **payload}
        if self.repo is not None:
            row = TelemetryEvent(tenant_id=self.tenant_id, job_id=job_id, ts=ts, event_type=event_type, payload=payload)
            await self._db(self.repo.add_events, [row])
        if self.jsonl_path is not None:
            with self.jsonl_path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(record, default=str) + "\n")
        for listener in list(self.listeners):
            listener(record)

    async def subtasks(self, rows: list[SubtaskRecord]) -> None:
        if self.rows_repo is not None:
            await self._db(self.rows_repo.add_subtasks, rows)

    async def update_subtask(self, job_id: str, subtask_id: str, **fields: Any) -> None:
        if self.rows_repo is not None:
            await self._db(self.rows_repo.update_subtask, job_id, subtask_id, **fields)

    async def update_job(self, job_id: str, **fields: Any) -> None:
        if self.rows_repo is not None:
            await self._db(self.rows_repo.update_job, job_id, **fields)

    async def plan_step(self, row: PlanStepRecord) -> None:
        if self.rows_repo is not None:
            await self._db(self.rows_repo.add_plan_step, row)
