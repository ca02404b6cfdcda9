"""Runtime: the long-lived pieces one process needs (DB, HTTP client, GPUs, catalog, estimator), opened once."""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from app.backends.base import Backend
from app.backends.upstream_limits import UpstreamLimits
from app.core.private_files import private_dir
from app.core.settings import Settings
from app.core.upstream import same_origin, upstream
from app.domain.models import Agent
from app.execution.catalog import CatalogWatch
from app.execution.cpu import BenchSlots, CpuPool, install_cpu_pool, uninstall_cpu_pool
from app.execution.state import BackendPool
from app.execution.usage import UsageSink
from app.execution.usage_journal import UsageJournal
from app.routing import Estimator, load_agents
from app.routing.milp import set_time_limit
from app.storage import db
from app.storage.models import Tenant
from app.storage.repo import Repo

log = logging.getLogger("swarm")


class TenantCache:
    """API key -> tenant for a few seconds, so hot paths (the proxies) do not query the DB per request.

    Token usage is applied to the cached objects as well as to the DB, so budget checks stay current.
    """

    ttl_s = 5.0

    def __init__(self) -> None:
        self._items: dict[str, tuple[float, Tenant | None]] = {}

    def get(self, key: str) -> tuple[bool, Tenant | None]:
        hit = self._items.get(key)
        if hit and hit[0] > time.monotonic():
            return True, hit[1]
        return False, None

    def put(self, key: str, tenant: Tenant | None) -> None:
        self._items[key] = (time.monotonic() + self.ttl_s, tenant)

    def add_tokens(self, tenant_id: str, tokens: int) -> None:
        for _, tenant in self._items.values():
            if tenant is not None and tenant.id == tenant_id:
                tenant.tokens_used += tokens

    def clear(self) -> None:
        self._items.clear()


@dataclass
class Runtime:
    settings: Settings
    repo: Repo
    http: httpx.AsyncClient
    pool: BackendPool
    agents: list[Agent]
    estimator: Estimator
    backend_kind: str
    tasks: dict[str, asyncio.Task[Any]] = field(default_factory=dict)
    tenants: TenantCache = field(default_factory=TenantCache)
    bench_progress: dict[str, Any] = field(default_factory=dict)  # run id -> live progress of /bench runs
    catalog: CatalogWatch = field(default_factory=CatalogWatch)
    usage: UsageSink = field(init=False)
    # This process, as the owner of the jobs it runs (several processes may share one database).
    owner_id: str = field(default_factory=lambda: f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}")
    cpu: CpuPool = field(init=False)
    bench_pool: CpuPool = field(init=False)
    bench_slots: BenchSlots = field(init=False)
    persist_estimator: bool = False  # the service keeps its estimator in the database; CLI runs use files
    _watch: asyncio.Task[None] | None = None
    _persist: asyncio.Task[None] | None = None
    _saved: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        s = self.settings
        LIVE_OWNERS.add(self.owner_id)
        self.usage = UsageSink(self.repo, journal=UsageJournal(Path(s.data_dir) / "usage"))
        self.cpu = CpuPool(s.cpu_workers, s.cpu_max_queue)
        install_cpu_pool(self.cpu)
        set_time_limit(s.solve_time_limit_s)
        # one thread per benchmark run that may execute at once; the slots keep the rest queued
        self.bench_pool = CpuPool(s.bench_max_running, s.bench_max_running, name="swarm-bench")
        self.bench_slots = BenchSlots(s.bench_max_running, s.bench_max_running_per_tenant)

    @property
    def catalog_key(self) -> str:
        return catalog_key(self.agents)

    async def load_estimator(self) -> None:
        """Resume learning from the database (the state saved for this catalog), if any."""
        self.persist_estimator = True
        state = await asyncio.to_thread(self.repo.estimator_state, self.catalog_key)
        if state is None:
            return
        try:
            self.estimator = Estimator.from_dict(state)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("stored estimator state for catalog %s ignored: %s", self.catalog_key, exc)
            return
        self._saved = state
        log.info("estimator state resumed for catalog %s", self.catalog_key)

    async def save_estimator(self) -> None:
        state = self.estimator.to_dict()
        if not self.persist_estimator or state == self._saved:
            return
        names = sorted(a.name for a in self.agents)
        await asyncio.to_thread(self.repo.save_estimator_state, self.catalog_key, names, state)
        self._saved = state

    def start_persisting(self, interval_s: float = 30.0) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(interval_s)
                try:
                    await self.save_estimator()
                except Exception as exc:  # a failed write is retried next round, never fatal
                    log.warning("saving the estimator state failed: %s", exc)

        if self._persist is None:
            self._persist = asyncio.create_task(loop())

    def start_catalog_watch(self) -> None:
        """Re-read every GPU's installed models every settings.catalog_refresh_s (0 = never on a timer)."""
        interval = self.settings.catalog_refresh_s
        if interval > 0 and self._watch is None:
            backends = lambda: [g.backend for g in self.pool.all()]  # noqa: E731
            self._watch = asyncio.create_task(self.catalog.watch(backends, interval))

    async def charge(self, tenant_id: str, tokens: int) -> None:
        """A finished job's tokens: on the cached tenants (budget checks) and written at once."""
        if tokens > 0:
            self.tenants.add_tokens(tenant_id, tokens)
            await self.usage.record(tenant_id, tokens)

    async def aclose(self) -> None:
        LIVE_OWNERS.discard(self.owner_id)
        for task in (self._watch, self._persist):
            if task is not None:
                task.cancel()
        await self.save_estimator()
        await self.usage.aclose()
        await self.pool.aclose()
        await self.http.aclose()
        self.repo.engine.dispose()
        self.bench_pool.shutdown()
        uninstall_cpu_pool(self.cpu)


LIVE_OWNERS: set[str] = set()  # the runtimes open in this process


def dead_local_owners(owners: list[str], mine: str) -> list[str]:
    """Owners (host:pid:tag) on this host whose process is gone: their jobs need no heartbeat timeout."""
    host = socket.gethostname()[:40]
    dead = []
    for owner in owners:
        rest = owner.split(":")
        if owner == mine or len(rest) != 3 or rest[0] != host or not rest[1].isdigit():
            continue
        pid = int(rest[1])
        if pid == os.getpid():
            if owner not in LIVE_OWNERS:
                dead.append(owner)  # an earlier, closed runtime of this very process
            continue
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            dead.append(owner)
        except PermissionError:
            pass
    return dead


def catalog_key(agents: list[Agent]) -> str:
    """A catalog's identity in the database: its model names, order-free."""
    digest = hashlib.sha256("\n".join(sorted(a.name for a in agents)).encode()).hexdigest()
    return "catalog-" + digest[:24]


def http_client() -> httpx.AsyncClient:
    # No read timeout: a cold model may take minutes before the first byte. Backends enforce a deadline instead.
    timeout = httpx.Timeout(connect=5.0, read=None, write=60.0, pool=None)
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    return httpx.AsyncClient(timeout=timeout, limits=limits)


async def resolve_backend_kind(settings: Settings, http: httpx.AsyncClient) -> str:
    """`auto`: Ollama if it answers now, else the embedded llama.cpp models if installed, else the simulator."""
    if settings.backend != "auto":
        return settings.backend
    try:
        url, headers = upstream(settings.ollama_base_url, settings.ollama_headers)
        resp = await http.get(url + "/api/version", headers=headers, timeout=2.0)
        if resp.status_code == 200:
            return "ollama"
    except httpx.HTTPError:
        pass
    return "local" if importlib.util.find_spec("llama_cpp") is not None else "sim"


def agents_file_for(settings: Settings, kind: str) -> Path:
    if settings.agents_file is not None:
        return settings.agents_file
    return settings.model_copy(update={"backend": kind}).default_agents_file()


def upstream_limits(settings: Settings) -> UpstreamLimits:
    return UpstreamLimits(settings.upstream_max_response_bytes, settings.upstream_max_line_bytes)


def build_backend(settings: Settings, kind: str, http: httpx.AsyncClient, agents: list[Agent]) -> Backend:
    from app.backends.factory import make_backend  # the local backend pulls in llama.cpp: import on demand

    per_kind: dict[str, dict[str, Any]] = {
        "ollama": {
            "deadline_s": settings.backend_deadline_s,
            "keep_alive": settings.keep_alive,
            "transport": settings.ollama_transport,
            "headers": settings.ollama_headers,
            "limits": upstream_limits(settings),
        },
        "local": {"data_dir": settings.data_dir},
    }
    extra = per_kind.get(kind, {})
    return make_backend(
        kind,
        client=http,
        ollama_base_url=settings.ollama_base_url,
        agents=agents,
        gpu_vram_gb=settings.gpu_vram_gb,
        seed=settings.sim_seed,
        time_scale=settings.sim_time_scale,
        **extra,
    )


def remote_ollama(settings: Settings, http: httpx.AsyncClient, url: str) -> Backend:
    """A tenant bound to its own Ollama URL gets its own GPU state, over the shared clients."""
    from app.backends.ollama import OllamaBackend
    from app.backends.transport import make_transport

    # The configured headers go only to the configured Ollama's origin, never to another host.
    headers = settings.ollama_headers if same_origin(url, settings.ollama_base_url) else None
    transport = make_transport(
        settings.ollama_transport,
        url,
        client=http,
        deadline_s=settings.backend_deadline_s,
        headers=headers,
        limits=upstream_limits(settings),
    )
    return OllamaBackend(transport, keep_alive=settings.keep_alive)


async def open_runtime(settings: Settings, backend: Backend | None = None, *, migrate: bool = True) -> Runtime:
    for folder in (settings.data_dir, settings.runs_dir):  # model cache, run outputs: owner-only
        await asyncio.to_thread(private_dir, folder)
    engine = db.make_engine(settings.database_url)
    if migrate:
        await asyncio.to_thread(db.upgrade, engine)
    repo = Repo(engine)
    http = http_client()
    try:
        kind = "injected" if backend is not None else await resolve_backend_kind(settings, http)
        agents = load_agents(agents_file_for(settings, "sim" if kind == "injected" else kind))
        if backend is None:
            backend = build_backend(settings, kind, http, agents)
    except BaseException:
        await http.aclose()
        raise
    pool = BackendPool(
        backend,
        settings.gpu_vram_gb,
        remote_factory=lambda url: remote_ollama(settings, http, url),
        scheduler=settings.scheduler,
        keep_alive=settings.keep_alive,
        routing=settings.routing.params,
    )
    log.info(
        "backend %s (%s), %d agents, G=%.1f GB (%s)",
        *(kind, backend.name, len(agents), settings.gpu_vram_gb, settings.gpu_vram_source),
    )
    runtime = Runtime(settings, repo, http, pool, agents, Estimator(), kind)
    runtime.catalog.offer_installed = settings.offer_installed_models
    rec = runtime.catalog.reconcile(backend, agents) if await _inventory(runtime, backend) else None
    if rec is not None and rec.missing:
        log.warning("catalog models not installed on %s (not routable): %s", backend.name, ", ".join(rec.missing))
    return runtime


async def _inventory(runtime: Runtime, backend: Backend) -> bool:
    inv = await runtime.catalog.refresh(backend)
    return inv.error is None
