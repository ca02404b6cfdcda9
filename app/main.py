"""create_app(settings) factory: the lifespan opens one HTTP client, the DB engine and the backends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.api import errors
from app.api.authfirst import AuthFirst
from app.api.docs import install_offline_docs
from app.api.fastpath import HotRoutes
from app.api.gateway import TenantGateway
from app.api.metrics import install_metrics, metrics_of, scheduler_listener
from app.api.middleware import BodyLimit
from app.api.openapi_doc import install_openapi
from app.api.routes import anthropic, bench, gpus, health, jobs, metrics, ollama, openai, route, telemetry, tenants
from app.api.routes.ui import install_dashboard
from app.api.tenancy import TenantResolver
from app.backends.base import Backend
from app.bench.isolation import set_mode as set_sandbox_mode
from app.core.settings import Settings, load_settings
from app.execution.manager import JobManager
from app.execution.runtime import Runtime, dead_local_owners, open_runtime
from app.execution.state import GpuState

log = logging.getLogger("swarm")

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def create_app(settings: Settings | None = None, *, backend: Backend | None = None, **overrides: Any) -> FastAPI:
    """Build the service. `backend` injects a ready Backend (tests, sim); otherwise settings decide."""
    cfg = settings.model_copy(update=overrides) if settings is not None else load_settings(**overrides)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await open_runtime(cfg, backend)
        set_sandbox_mode(cfg.sandbox)
        dead = dead_local_owners(runtime.repo.unfinished_owners(), runtime.owner_id)
        interrupted = runtime.repo.mark_unfinished_interrupted(
            "service restarted before the job finished",
            owner_id=runtime.owner_id,
            stale_after_s=_stale_s(cfg),
            dead_owners=dead,
        )
        if interrupted:
            log.warning("marked %d unfinished job(s) of a stopped process as interrupted", interrupted)
        heartbeat = asyncio.create_task(_heartbeat(runtime), name="owner-heartbeat")
        runtime.repo.ensure_default_tenant()
        if runtime.repo.keyed_tenant_count() == 0 and cfg.host not in LOOPBACK:
            log.warning("no tenants configured: the open 'default' tenant is reachable on %s", cfg.host)
        # Every long-lived object is built here and handed out by api/deps.py.
        app.state.runtime = runtime
        runtime.start_catalog_watch()
        await runtime.load_estimator()  # learning survives restarts: state per catalog in the database
        runtime.start_persisting(cfg.estimator_save_s)
        app.state.tenants = TenantResolver(runtime)
        app.state.jobs = JobManager(runtime)
        app.state.gateway = TenantGateway(app.state.tenants, runtime.usage, metrics_of(app))
        _watch_schedulers(app, runtime)
        try:
            yield
        finally:
            heartbeat.cancel()
            await _shutdown(runtime)  # closing the runtime flushes proxied tokens still waiting for their write

    app = FastAPI(
        title="Ollama Swarm Router",
        version="0.1.0",
        summary="VRAM-aware routing of jobs and chat requests across local models.",
        lifespan=lifespan,
        docs_url=None,  # /docs and /redoc are served offline (api/docs.py)
        redoc_url=None,
    )
    app.state.settings = cfg
    # Innermost: the proxies' hot endpoints skip FastAPI's routing (api/fastpath.py).
    app.add_middleware(HotRoutes, routers=[ollama.router, openai.router, anthropic.router])
    app.add_middleware(BodyLimit, max_bytes=cfg.max_body_bytes)
    app.add_middleware(AuthFirst)  # outside the body limit: a chunked body is not read for a caller without a key
    if cfg.cors_origins:  # outermost of these, so every answer above carries the CORS headers
        app.add_middleware(CORSMiddleware, allow_origins=cfg.cors_origins, allow_methods=["*"], allow_headers=["*"])
    install_metrics(app)
    errors.install(app)
    install_openapi(app)
    for module in (health, route, jobs, bench, tenants, telemetry, metrics, openai, anthropic, ollama, gpus):
        app.include_router(module.router)
    install_offline_docs(app)
    install_dashboard(app)
    return app


def _watch_schedulers(app: FastAPI, runtime: Runtime) -> None:
    metrics = metrics_of(app)
    if metrics is None:
        return

    def attach(gpu: GpuState) -> None:
        sched = gpu.scheduler
        sched.listeners.append(scheduler_listener(metrics, gpu.backend.name, lambda: sched.queue))

    runtime.pool.on_gpu.append(attach)
    for gpu in runtime.pool.all():
        attach(gpu)


def _stale_s(cfg: Settings) -> float:
    return cfg.owner_heartbeat_s * cfg.owner_stale_after


async def _heartbeat(runtime: Runtime) -> None:
    """Stamp this process's running jobs, and sweep those of processes that stopped stamping theirs."""
    cfg = runtime.settings
    while True:
        await asyncio.sleep(cfg.owner_heartbeat_s)
        try:
            await asyncio.to_thread(runtime.repo.heartbeat, runtime.owner_id)
            swept = await asyncio.to_thread(
                runtime.repo.mark_unfinished_interrupted,
                "the process running the job stopped",
                owner_id=runtime.owner_id,
                stale_after_s=_stale_s(cfg),
            )
            if swept:
                log.warning("marked %d job(s) of a stopped process as interrupted", swept)
        except Exception:  # a busy or briefly unreachable database must not end the heartbeat
            log.exception("owner heartbeat failed")


async def _shutdown(runtime: Runtime) -> None:
    """Cancel in-flight jobs (their handlers mark them cancelled) before closing clients."""
    for task in list(runtime.tasks.values()):
        task.cancel()
    for task in list(runtime.tasks.values()):
        with contextlib.suppress(BaseException):  # the job runner already recorded the outcome
            await task
    await runtime.aclose()
