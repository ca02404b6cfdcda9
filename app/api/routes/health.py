"""Liveness (/healthz) and readiness (/readyz: database, backend and CPU executor, per component)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.core.errors import SwarmError
from app.storage import db

router = APIRouter(tags=["health"])


@router.get("/healthz")
@router.head("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
@router.head("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    runtime = request.app.state.runtime
    components: dict[str, dict[str, Any]] = {}
    try:
        await asyncio.to_thread(db.ping, runtime.repo.engine)
        components["database"] = {"ok": True}
    except Exception as exc:
        components["database"] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"[:300]}
    backend = runtime.pool.default.backend
    try:
        await asyncio.wait_for(backend.ping(), timeout=5.0)
        components["backend"] = {"ok": True, "kind": runtime.backend_kind, "name": backend.name}
    except (SwarmError, TimeoutError) as exc:
        msg = getattr(exc, "message", None) or "no answer within 5 s"
        components["backend"] = {"ok": False, "kind": runtime.backend_kind, "name": backend.name, "error": msg}
    if components["backend"]["ok"]:
        await runtime.catalog.refresh(backend)
    rec = runtime.catalog.reconcile(backend, runtime.agents)
    # Not ready when none of the catalog's models is installed; degraded (still 200) when some are missing.
    components["catalog"] = {"ok": not rec.none_installed, **rec.view()}
    cpu = runtime.cpu.status()
    components["cpu"] = {"ok": not cpu["saturated"], **cpu}
    if cpu["saturated"]:
        components["cpu"]["error"] = "the CPU executor (solves, reports) is saturated"
    ready = all(c["ok"] for c in components.values())
    status = ("degraded" if rec.missing else "ready") if ready else "not_ready"
    return JSONResponse({"status": status, "components": components}, 200 if ready else 503)
