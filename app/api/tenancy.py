"""Who is calling: the one tenant resolver (API key -> tenant, its GPU and catalog) for every endpoint family."""

from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import dataclass
from functools import cached_property, partial

from app.core.errors import Unauthorized
from app.domain.models import Agent
from app.execution.budget import check_budget
from app.execution.runtime import Runtime
from app.execution.state import GpuState
from app.routing.agents import load_agents, parse_agents
from app.storage.models import Tenant

OPEN_TTL_S = 1.0  # how long "no keyed tenant exists" is trusted before asking the database again


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

    def check_budget(self, reserve: int = 0) -> None:
        """429 when spent + reserved tokens reach the budget; else reserve `reserve` tokens (execution/budget.py)."""
        check_budget(self.runtime, self.tenant, reserve)


def tenant_agents(runtime: Runtime, tenant: Tenant) -> list[Agent]:
    if tenant.agents:
        return parse_agents(tenant.agents, source=f"tenant {tenant.name}")
    if tenant.agents_file:
        return load_agents(tenant.agents_file)
    return runtime.agents


def bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization header must be 'Bearer <key>'")
    return token.strip()


class TenantResolver:
    """API key -> TenantCtx. Keys are cached for a few seconds (runtime.tenants), so the proxies' hot path does not
    query the database per request.

    The one open-mode rule, for every endpoint family: while no keyed tenant exists, every caller is the
    `default` tenant whatever key it sends (OpenAI clients must send one; Ollama ignores it); only the admin key
    is recognised, for /admin and model management. Once a keyed tenant exists, a missing or unknown key is a
    401 everywhere."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._open: Tenant | None = None
        self._open_until = 0.0

    def is_admin_key(self, key: str | None) -> bool:
        admin = self.runtime.settings.admin_key
        return bool(admin and key and hmac.compare_digest(admin.encode(), key.encode()))

    async def resolve(self, authorization: str | None) -> TenantCtx:
        open_tenant = await self._open_tenant()
        if open_tenant is not None:
            _, _, key = (authorization or "").partition(" ")
            return self._ctx(open_tenant, self.is_admin_key(key.strip() or None))
        tenant, admin = await self._by_key(bearer(authorization))
        return self._ctx(tenant, admin)

    def _ctx(self, tenant: Tenant, admin: bool) -> TenantCtx:
        gpu = self.runtime.pool.get(tenant.backend_url, tenant.gpu_vram_gb)
        return TenantCtx(tenant, gpu, self.runtime, tenant.gpu_vram_gb or gpu.capacity_gb, admin)

    async def _default(self) -> Tenant:
        tenant = await asyncio.to_thread(self.runtime.usage.fresh, self.runtime.repo.ensure_default_tenant)
        assert tenant is not None
        return tenant

    async def _by_key(self, key: str | None) -> tuple[Tenant, bool]:
        """A tenant read from the database counts its usage still waiting for its batch (UsageSink.fresh)."""
        repo = self.runtime.repo
        if self.is_admin_key(key):
            return await self._default(), True
        if key is None:
            if await asyncio.to_thread(repo.keyed_tenant_count):
                raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
            return await self._default(), False
        hit, tenant = self.runtime.tenants.get(key)
        if not hit:
            tenant = await asyncio.to_thread(self.runtime.usage.fresh, partial(repo.tenant_by_key, key))
            self.runtime.tenants.put(key, tenant)
        if tenant is None:
            raise Unauthorized("invalid API key")
        return tenant, False

    def forget_open(self) -> None:
        """A keyed tenant was just created here: open mode ends now, not OPEN_TTL_S later."""
        self._open, self._open_until = None, 0.0

    async def _open_tenant(self) -> Tenant | None:
        """The default tenant while no keyed tenant exists, read from the database at most every OPEN_TTL_S."""
        now = time.monotonic()
        if now >= self._open_until:
            repo = self.runtime.repo
            keyed = await asyncio.to_thread(repo.keyed_tenant_count)
            self._open = None if keyed else await self._default()
            self._open_until = now + OPEN_TTL_S
        return self._open
