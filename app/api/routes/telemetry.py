"""GET /telemetry/export: the caller's telemetry events as NDJSON, streamed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from itertools import islice

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from app.api.deps import RuntimeDep, TenantDep
from app.storage.export import event_to_dict, parse_since
from app.storage.models import TelemetryEvent

router = APIRouter(tags=["telemetry"])


@router.get("/telemetry/export")
async def export(
    ctx: TenantDep,
    runtime: RuntimeDep,
    job_id: str | None = Query(None, max_length=64),
    event_type: str | None = Query(None, max_length=40),
    since: str | None = Query(None, description="ISO 8601 timestamp or epoch seconds"),
) -> StreamingResponse:
    since_ts = parse_since(since)
    batch = 500

    async def lines() -> AsyncIterator[bytes]:
        def page(after: int) -> list[TelemetryEvent]:
            events = runtime.repo.iter_events(ctx.tenant.id, job_id, event_type, since_ts, batch, after)
            return list(islice(events, batch))

        last = 0
        while True:
            rows = await asyncio.to_thread(page, last)
            if not rows:
                return
            for e in rows:
                yield (json.dumps(event_to_dict(e), separators=(",", ":"), sort_keys=True) + "\n").encode()
            last = int(rows[-1].id or 0)

    return StreamingResponse(lines(), media_type="application/x-ndjson")
