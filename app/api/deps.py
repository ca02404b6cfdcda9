"""Request dependencies: the runtime, the caller's tenant (from the Bearer key) and its GPU and catalog."""

from __future__ import annotations

import asyncio
import hmac
from dataclasses import dataclass
from functools import cached_property
from typing import Annotated

from fastapi import Depends, Header, Request

from app.core.errors import BudgetExceeded, Forbidden, Unauthorized
from app.domain.models import Agent
from app.execution.runtime import Runtime
from app.execution.state import GpuState
from app.routing.agents import load_agents, parse_agents
from app.storage.models import Tenant
from app.storage.repo import DEFAULT_TENANT


@dataclass
class TenantCtx:
    tenant: Tenant
    gpu: GpuState
    runtime: Runtime
    gpu_vram_gb: float
    is_admin: bool = False

    @property
    def scope(self) -> str | None:
        """Whose jobs and bench runs this caller reads: its own tenant's, or every tenant's for the admin key."""
        return None if self.is_admin else self.tenant.id

    @cached_property
    def agents(self) -> list[Agent]:
        """The tenant's catalog, read only by the endpoints that route (a broken file never locks out /jobs)."""
        return tenant_agents(self.runtime, self.tenant)

    def check_budget(self) -> None:
        t = self.tenant
        if t.token_budget is not None and t.tokens_used >= t.token_budget:
            raise BudgetExceeded(
                f"token budget exhausted for tenant {t.name!r}: used {t.tokens_used} of {t.token_budget}"
            )


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <key>'")
    return token.strip()


async def cached_tenant(runtime: Runtime, key: str) -> Tenant | None:
    hit, tenant = runtime.tenants.get(key)
    if not hit:
        tenant = await asyncio.to_thread(runtime.repo.tenant_by_key, key)
        runtime.tenants.put(key, tenant)
    return tenant


def is_admin_key(runtime: Runtime, key: str | None) -> bool:
    admin = runtime.settings.admin_key
    return bool(admin and key and hmac.compare_digest(admin.encode(), key.encode()))


async def resolve_tenant(runtime: Runtime, authorization: str | None) -> tuple[Tenant, bool]:
    key = _bearer(authorization)
    if is_admin_key(runtime, key):
        return await asyncio.to_thread(runtime.repo.ensure_default_tenant), True
    if key is None:
        keyed = await asyncio.to_thread(runtime.repo.keyed_tenant_count)
        if keyed:
            raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
        return await asyncio.to_thread(runtime.repo.ensure_default_tenant), False
    tenant = await cached_tenant(runtime, key)
    if tenant is None:
        raise Unauthorized("invalid API key")
    return tenant, False


def tenant_agents(runtime: Runtime, tenant: Tenant) -> list[Agent]:
    if tenant.agents:
        return parse_agents(tenant.agents, source=f"tenant {tenant.name}")
    if tenant.agents_file:
        return load_agents(tenant.agents_file)
    return runtime.agents


async def get_tenant(request: Request, authorization: Annotated[str | None, Header()] = None) -> TenantCtx:
    runtime = get_runtime(request)
    tenant, admin = await resolve_tenant(runtime, authorization)
    gpu = runtime.pool.get(tenant.backend_url, tenant.gpu_vram_gb)
    vram = tenant.gpu_vram_gb or gpu.capacity_gb
    return TenantCtx(tenant, gpu, runtime, vram, admin)


async def require_admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> Runtime:
    runtime = get_runtime(request)
    key = _bearer(authorization)
    if not runtime.settings.admin_key:
        raise Forbidden("admin endpoints are disabled: set SWARM_ADMIN_KEY")
    if not is_admin_key(runtime, key):
        raise Unauthorized("admin key required")
    return runtime


TenantDep = Annotated[TenantCtx, Depends(get_tenant)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
AdminDep = Annotated[Runtime, Depends(require_admin)]
__all__ = ["DEFAULT_TENANT", "AdminDep", "RuntimeDep", "TenantCtx", "TenantDep"]
