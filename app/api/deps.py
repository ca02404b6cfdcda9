"""Request dependencies: the long-lived objects the lifespan built (runtime, tenant resolver, job manager,
gateway) and the caller's tenant."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Header, Request

from app.api.tenancy import TenantCtx, TenantResolver, bearer
from app.core.errors import Forbidden, Unauthorized
from app.execution.manager import JobManager
from app.execution.runtime import Runtime
from app.storage.repo import DEFAULT_TENANT


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def get_resolver(request: Request) -> TenantResolver:
    resolver: TenantResolver = request.app.state.tenants
    return resolver


def get_jobs(request: Request) -> JobManager:
    jobs: JobManager = request.app.state.jobs
    return jobs


async def get_tenant(request: Request, authorization: Annotated[str | None, Header()] = None) -> TenantCtx:
    return await get_resolver(request).resolve(authorization)


async def require_admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> Runtime:
    runtime = get_runtime(request)
    key = bearer(authorization)
    if not runtime.settings.admin_key:
        raise Forbidden("admin endpoints are disabled: set SWARM_ADMIN_KEY")
    if not get_resolver(request).is_admin_key(key):
        raise Unauthorized("admin key required")
    return runtime


TenantDep = Annotated[TenantCtx, Depends(get_tenant)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
AdminDep = Annotated[Runtime, Depends(require_admin)]
JobsDep = Annotated[JobManager, Depends(get_jobs)]
__all__ = ["DEFAULT_TENANT", "AdminDep", "JobsDep", "RuntimeDep", "TenantCtx", "TenantDep"]
