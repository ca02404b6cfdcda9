"""Tenants: admin CRUD (/admin/tenants) and the caller's own view (/tenants/me)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request

from app.api.deps import AdminDep, RuntimeDep, TenantDep, get_resolver
from app.api.schemas import TenantCreate
from app.core.errors import Conflict, NotFound, ValidationFailed
from app.core.upstream import redact_url
from app.routing import load_agents
from app.storage.models import Tenant

router = APIRouter(tags=["tenants"])


def tenant_view(t: Tenant) -> dict[str, Any]:
    return {
        "id": t.id,
        "name": t.name,
        "key_prefix": t.key_prefix,
        "backend_url": redact_url(t.backend_url),
        "gpu_vram_gb": t.gpu_vram_gb,
        "agents": [a["name"] for a in t.agents] if t.agents else None,
        "agents_file": t.agents_file,
        "token_budget": t.token_budget,
        "tokens_used": t.tokens_used,
        "created_at": t.created_at,
    }


@router.post("/admin/tenants", status_code=201)
async def create_tenant(body: TenantCreate, runtime: AdminDep, request: Request) -> dict[str, Any]:
    if await asyncio.to_thread(runtime.repo.tenant_by_name, body.name):
        raise ValidationFailed(f"name: a tenant named {body.name!r} already exists")
    if body.agents_file:
        if not await asyncio.to_thread(Path(body.agents_file).is_file):
            raise ValidationFailed(f"agents_file: file not found: {body.agents_file}")
        await asyncio.to_thread(load_agents, body.agents_file)  # reject a broken catalog now, not at a job
    fields = body.model_dump(exclude={"name", "agents"})
    fields["agents"] = [a.model_dump() for a in body.agents] if body.agents else None
    tenant, key = await asyncio.to_thread(runtime.repo.create_tenant, body.name, **fields)
    get_resolver(request).forget_open()
    # The key is shown once; only its hash is stored.
    return {**tenant_view(tenant), "api_key": key}


@router.get("/admin/tenants")
async def list_tenants(runtime: AdminDep) -> dict[str, Any]:
    rows = await asyncio.to_thread(runtime.repo.list_tenants)
    return {"items": [tenant_view(t) for t in rows]}


@router.delete("/admin/tenants/{tenant_id}")
async def delete_tenant(tenant_id: str, runtime: AdminDep, purge: bool = False) -> dict[str, Any]:
    """Deletes the tenant; with `?purge=true` also its jobs, bench runs and telemetry (refused otherwise when it
    owns any). Never while one of its jobs or bench runs is unfinished."""
    if tenant_id == "default":
        raise ValidationFailed("the default tenant cannot be deleted")
    if await asyncio.to_thread(runtime.repo.get_tenant, tenant_id) is None:
        raise NotFound(f"tenant {tenant_id!r} not found")
    held = await asyncio.to_thread(runtime.repo.tenant_holdings, tenant_id)
    busy = held["unfinished_jobs"] + held["unfinished_bench_runs"]
    if busy:
        raise Conflict(f"tenant {tenant_id!r} has {busy} unfinished job(s) or bench run(s): cancel them first")
    owned = {k: v for k, v in held.items() if v and not k.startswith("unfinished")}
    if owned and not purge:
        listing = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in owned.items())
        raise Conflict(f"tenant {tenant_id!r} owns {listing}; pass ?purge=true to delete them with it")
    if not await asyncio.to_thread(runtime.repo.delete_tenant, tenant_id):
        raise NotFound(f"tenant {tenant_id!r} not found")
    runtime.tenants.clear()
    return {"id": tenant_id, "deleted": True, "purged": owned}


@router.get("/tenants/me")
async def me(request: Request, ctx: TenantDep, runtime: RuntimeDep) -> dict[str, Any]:
    resident = await ctx.gpu.refresh()
    # Proxied tokens are written in batches: the sink counts the unwritten ones too.
    stored, used = await asyncio.to_thread(runtime.usage.tokens_used, ctx.tenant.id)
    t = stored or ctx.tenant
    remaining = None if t.token_budget is None else max(0, t.token_budget - used)
    models = (await runtime.catalog.current(ctx.gpu.backend, ctx.agents)).view()
    return {
        **tenant_view(t),
        "tokens_used": used,
        "is_admin": ctx.is_admin,
        "agents": [a.name for a in ctx.agents],
        "usage": {
            "tokens_used": used,
            "token_budget": t.token_budget,
            "tokens_remaining": remaining,
            # held by admitted work (jobs, proxied calls) until it settles; counted by budget checks
            "tokens_reserved": runtime.usage.reserved.get(ctx.tenant.id, 0),
        },
        "gpu": {
            "backend": ctx.gpu.backend.name,
            "gpu_vram_gb": ctx.gpu_vram_gb,
            "gpu_vram_source": "tenant" if ctx.tenant.gpu_vram_gb else runtime.settings.gpu_vram_source,
            "loaded": [{"name": m.name, "size_vram": m.size_vram, "expires_at": m.expires_at} for m in resident],
        },
        "models": models,
        "estimator": {"catalog": runtime.catalog_key, **runtime.estimator.view(ctx.agents)},
    }
