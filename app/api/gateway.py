"""Who serves a proxied call: the caller's GPU and, for model="auto", the model (the routing fast path); each call's
router-side time, and its usage charged to the tenant."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from fastapi import Request

from app.api.disconnect import close_stream, until_disconnect
from app.api.metrics import T0_KEY, Metrics
from app.api.tenancy import TenantCtx, TenantResolver
from app.api.usage_counts import with_counts
from app.backends.base import JSON, Backend, RawReply, Usage
from app.backends.upstream_limits import UpstreamLimits
from app.core.errors import BadBackendResponse, BadRequest, Forbidden, InfeasibleError, SwarmError
from app.domain.models import Agent, Subtask
from app.execution.budget import call_estimate
from app.execution.calls import catalog_specs
from app.execution.decomposer import classify, estimate_difficulty
from app.execution.orchestrator import observe_usage
from app.execution.runtime import upstream_limits
from app.execution.sched_plan import ModelSpec
from app.execution.sched_types import CallRequest
from app.execution.scheduler import Lease
from app.execution.state import GpuState
from app.execution.usage import UsageSink
from app.routing import route_single
from app.storage.models import Tenant

log = logging.getLogger("swarm.proxy")
T = TypeVar("T")

AUTO = "auto"
ROUTED_HEADER = "x-swarm-routed-model"
OVERHEAD_HEADER = "x-swarm-overhead-ms"
SKIPPED_HEADER = "x-swarm-skipped-models"  # model="auto": catalog models left out because they are not installed
LOADED_TTL_S = 1.0  # how stale the routed-over loaded set may be


@dataclass
class Call:
    """One proxied request: the backend and model serving it and the router's own time."""

    gateway: Gateway
    backend: Backend
    model: str
    routed: bool
    api: str
    t0: float
    tenant: Tenant | None = None
    upstream_s: float = 0.0
    lease: Lease | None = None  # the GPU scheduler's dispatch of this call; released when the call ends
    reserved: int = 0  # tokens held against the tenant's budget from admission until the call ends
    chunks: int = 0  # token chunks relayed so far (a cut stream is charged these)
    finished: bool = False
    skipped: tuple[str, ...] = ()  # model="auto": catalog models left out because they are not installed

    def release(self) -> None:
        """The model's slot and the budget reservation go back (idempotent). Every way a call ends comes here, a
        charge (finish, settle) in the same step as this, so a concurrent admission sees one or the other."""
        if self.lease is not None:
            self.lease.release()
        if self.reserved:
            self.gateway.unreserve(self)

    async def upstream(self, awaitable: Awaitable[T]) -> T:
        started = time.perf_counter()
        try:
            return await awaitable
        finally:
            self.upstream_s += time.perf_counter() - started

    async def first(self, request: Request, stream: AsyncIterator[T]) -> T:
        """Pull a stream's first chunk before answering, so errors before any byte (a cold load sends none) get
        a real status code; cancelled if the client leaves; the stream is closed when this fails."""
        try:
            first = await until_disconnect(request, self.upstream(anext(stream, None)))
        except BaseException:
            await close_stream(stream)
            self.release()
            raise
        if first is None:
            await close_stream(stream)
            self.release()
            raise BadBackendResponse("the backend closed the stream without a chunk")
        return first

    def overhead_ms(self) -> float:
        return max(0.0, (time.perf_counter() - self.t0 - self.upstream_s) * 1e3)

    def headers(self) -> dict[str, str]:
        ms = self.overhead_ms()
        if self.gateway.metrics is not None:
            self.gateway.metrics.child(self.gateway.metrics.overhead, self.api).observe(ms / 1e3)
        headers = {ROUTED_HEADER: self.model, OVERHEAD_HEADER: f"{ms:.3f}"}
        if self.skipped:
            headers[SKIPPED_HEADER] = ",".join(self.skipped)
        return headers

    def finish(self, final: JSON) -> None:
        """Account a final response (tokens, loads, the tenant's budget); the model's slot is free again."""
        self.finished = True
        self.release()
        self.gateway.account(self, with_counts(final, self.chunks))  # no usage reported: chunks or text counted

    def saw(self, chunks: int) -> None:
        self.chunks += chunks

    def settle(self) -> None:
        """A stream that ends without its final usage (client gone, upstream cut): charge the chunks relayed."""
        if not self.finished:
            self.finished = True
            self.gateway.account_partial(self, self.chunks)

    async def end(self, stream: AsyncIterator[Any]) -> None:
        """A relayed stream is over, however it ended: charged (settle), released, the upstream closed."""
        self.settle()
        self.release()
        await close_stream(stream)

    async def relay(self, request: Request, path: str, body: bytes) -> RawReply:
        """A compatible-API call (OpenAI, Responses, Anthropic) the backend answers in that API's own format
        (Backend.relay_compat): cancelled if the client leaves before the answer's head; the caller reads the body
        and accounts it (finish), or releases the call if it ends otherwise."""
        try:
            return await until_disconnect(request, self.upstream(self.backend.relay_compat(path, body)))
        except BaseException:
            self.release()
            raise

    async def complete(self, request: Request, work: Awaitable[JSON]) -> JSON:
        """A non-streaming upstream call: cancelled if the client leaves, accounted when it answers."""
        try:
            final = await until_disconnect(request, self.upstream(work))
        finally:
            self.release()
        self.finish(final)
        return final


class Gateway:
    """Resolves who serves a compat call. The plain gateway (the sim-ollama server) has no tenants or routing."""

    supports_auto = False

    def __init__(self, backend: Backend, metrics: Metrics | None = None, limits: UpstreamLimits | None = None) -> None:
        self._backend = backend
        self.metrics = metrics
        self.limits = limits or UpstreamLimits()  # what a relayed answer may weigh (compat_relay)

    async def backend_for(self, request: Request) -> Backend:
        return self._backend

    async def begin(
        self,
        request: Request,
        api: str,
        model: str,
        text: Callable[[], str],
        max_tokens: Any = None,
        *,
        tools: bool = False,
    ) -> Call:
        """`tools`: the request offers tools, so model="auto" picks only among models that can call them."""
        t0 = float(request.scope.get(T0_KEY) or time.perf_counter())
        return Call(self, self._backend, model, False, api, t0)

    async def admin_backend(self, request: Request, path: str) -> Backend:
        return self._backend

    async def models_changed(self, backend: Backend) -> None:
        """A pull or delete went through: nothing to re-read without a catalog."""

    async def can_call_tools(self, request: Request) -> bool:
        """Whether model="auto" can serve a request with tools (some catalog model calls them)."""
        return False

    def account(self, call: Call, final: JSON) -> None:
        if self.metrics is not None:
            self.metrics.child(self.metrics.proxied, call.api, call.model, str(call.routed).lower()).inc()
            self.metrics.observe_usage(call.model, final)

    def account_partial(self, call: Call, chunks: int) -> None:
        """A stream cut before its final chunk: no usage to read, the relayed chunks count (one token each)."""

    def unreserve(self, call: Call) -> None:
        """The call's budget reservation is given back."""
        call.reserved = 0

    def observe_error(self, exc: SwarmError | str) -> None:
        if self.metrics is not None:
            self.metrics.observe_error(exc if isinstance(exc, str) else exc.code)


class TenantGateway(Gateway):
    """The router: the caller's tenant picks the GPU; model="auto" picks the model with the fast path."""

    supports_auto = True

    def __init__(self, resolver: TenantResolver, usage: UsageSink, metrics: Metrics | None) -> None:
        runtime = resolver.runtime
        super().__init__(runtime.pool.default.backend, metrics, upstream_limits(runtime.settings))
        self.runtime = runtime
        self.resolver = resolver
        self.usage = usage
        self.params = runtime.settings.routing.params
        self._refreshing: dict[int, asyncio.Task[Any]] = {}
        self._spec_cache: dict[int, tuple[list[Agent], dict[str, ModelSpec]]] = {}

    async def _tenant(self, request: Request) -> TenantCtx:
        authorization = request.headers.get("authorization")
        if authorization is None and (key := request.headers.get("x-api-key")):
            authorization = f"Bearer {key}"  # Anthropic clients send their key this way
        return await self.resolver.resolve(authorization)

    async def backend_for(self, request: Request) -> Backend:
        return (await self._tenant(request)).gpu.backend

    async def begin(
        self,
        request: Request,
        api: str,
        model: str,
        text: Callable[[], str],
        max_tokens: Any = None,
        *,
        tools: bool = False,
    ) -> Call:
        """Resolve the tenant, reserve the call's estimate against its budget (429 when spent plus reserved tokens
        reach it), and wait for the GPU's scheduler to dispatch the call: an explicit model as asked; "auto" bound
        late, among the models that can serve it, preferring a resident one."""
        t0 = float(request.scope.get(T0_KEY) or time.perf_counter())
        body_bytes = len(await request.body())  # read (and cached) by the endpoint already
        ctx = await self._tenant(request)
        ctx.check_budget()
        routed = model == AUTO
        agents = ctx.agents
        skipped: tuple[str, ...] = ()
        if routed:
            candidates, agents, skipped = await self._route(ctx, text(), max_tokens, tools)
        else:
            await self.runtime.catalog.check_model(ctx.gpu.backend, model)
            candidates = {model: 1.0}
        req = CallRequest(ctx.tenant.id, candidates, self._specs(agents), kind="proxy", label=api)
        scheduler = ctx.gpu.scheduler
        estimate = call_estimate(body_bytes, max_tokens, self.runtime.settings.proxy_reserve_tokens)
        ctx.check_budget(reserve=estimate)  # no await between the check and the reservation
        reserved = estimate if ctx.tenant.token_budget is not None else 0
        try:
            lease = scheduler.try_acquire(req)
            if lease is None:
                lease = await until_disconnect(request, scheduler.acquire(req))
        except BaseException:
            self.usage.release(ctx.tenant.id, reserved)
            raise
        call = Call(self, ctx.gpu.backend, lease.model, routed, api, t0, ctx.tenant, lease=lease, skipped=skipped)
        call.reserved = reserved
        return call

    async def models_changed(self, backend: Backend) -> None:
        await self.runtime.catalog.refresh(backend)

    def _specs(self, agents: list[Agent]) -> dict[str, ModelSpec]:
        """The catalog's sizes and load times for the scheduler, built once per catalog list."""
        hit = self._spec_cache.get(id(agents))
        if hit is None or hit[0] is not agents:
            if len(self._spec_cache) > 64:  # installed-model lists change with each inventory re-read
                self._spec_cache.clear()
            hit = (agents, catalog_specs(agents))
            self._spec_cache[id(agents)] = hit
        return hit[1]

    async def can_call_tools(self, request: Request) -> bool:
        return any(a.tools for a in (await self._tenant(request)).agents)

    async def admin_backend(self, request: Request, path: str) -> Backend:
        ctx = await self._tenant(request)
        if not ctx.is_admin:
            raise Forbidden(f"{path} needs the admin key")
        return ctx.gpu.backend

    def account_partial(self, call: Call, chunks: int) -> None:
        if call.tenant is not None:
            self.usage.add(call.tenant, chunks)

    def unreserve(self, call: Call) -> None:
        if call.tenant is not None:
            self.usage.release(call.tenant.id, call.reserved)
        call.reserved = 0

    def account(self, call: Call, final: JSON) -> None:
        super().account(call, final)
        observe_usage(self.runtime.estimator, call.model, Usage.from_response(final))
        if call.tenant is not None:
            tokens = int(final.get("prompt_eval_count") or 0) + int(final.get("eval_count") or 0)
            self.usage.add(call.tenant, tokens)

    async def _route(
        self, ctx: TenantCtx, text: str, max_tokens: Any, tools: bool = False
    ) -> tuple[dict[str, float], list[Agent], tuple[str, ...]]:
        """model="auto": every installed model that can serve the request with its utility before switch cost, best
        first (only tool-calling models when the request has tools; the scheduler binds one at dispatch, charging
        the switch cost of whatever is not resident then); the installed agents; the catalog models skipped because
        they are not installed."""
        rec = await self.runtime.catalog.current(ctx.gpu.backend, ctx.agents)
        if rec.none_installed:
            raise rec.no_model_error(ctx.gpu.backend.name)
        installed = rec.routable if (rec.missing or rec.offered) else ctx.agents
        loaded = await self._loaded(ctx.gpu)
        task_type = classify(text)
        default_tokens = 512 if task_type in ("code", "creative") else 256
        tokens = max_tokens if isinstance(max_tokens, int) and max_tokens > 0 else default_tokens
        if tokens > 1_000_000:
            raise BadRequest("max_tokens: must be at most 1000000", "max_tokens")
        sub = Subtask(
            id="request",
            task_type=task_type,
            description=text[:200_000],
            estimated_tokens=min(tokens, 1_000_000),
            difficulty=estimate_difficulty(text[:20_000]),
        )
        agents = [a for a in installed if a.tools] if tools else installed
        if not agents:
            raise BadRequest(
                'tools: no model in the catalog can call tools (set "tools": true in the agents file)',
                "tools",
            )
        names = {a.name for a in agents}
        resident = [n for n in (_catalog_name(m, names) for m in loaded) if n is not None]
        started = time.perf_counter()
        cells = self.runtime.estimator.cells(sub, agents, set(resident), ctx.gpu_vram_gb, self.params)
        if not any(c.feasible for c in cells):
            try:  # raises the InfeasibleError that names the smallest model and the budget
                route_single(sub, agents, resident, ctx.gpu_vram_gb, self.params, self.runtime.estimator)
            except InfeasibleError as exc:
                field = "max_tokens" if max_tokens else "messages"
                raise BadRequest(f"{field}: no model can serve this request ({exc.message})", field) from None
        # Utility before switch cost: the scheduler adds it for whatever is not resident when it binds the call.
        lam = self.params.lambda_switch
        ranked = sorted(((c.utility + lam * c.switch_cost, c.agent) for c in cells if c.feasible), reverse=True)
        if self.metrics is not None:
            self.metrics.observe_solve(time.perf_counter() - started, "fast_path")
        return {name: utility for utility, name in ranked}, installed, tuple(rec.missing)

    async def _loaded(self, gpu: GpuState) -> list[str]:
        """The GPU's loaded set, at most LOADED_TTL_S old; a stale set is served while a refresh runs."""
        age = time.time() - gpu.refreshed_at
        if age <= LOADED_TTL_S:
            return gpu.loaded_names
        task = self._refreshing.get(id(gpu))
        if task is None:
            task = asyncio.create_task(gpu.refresh())
            self._refreshing[id(gpu)] = task
            task.add_done_callback(partial(self._refreshed, id(gpu)))
        if gpu.refreshed_at == 0.0:  # never read: wait for the truth once
            await asyncio.wait([task])
        return gpu.loaded_names

    def _refreshed(self, key: int, task: asyncio.Task[Any]) -> None:
        self._refreshing.pop(key, None)
        if not task.cancelled() and task.exception() is not None:
            log.warning("refreshing the loaded models failed: %s", task.exception())


def _catalog_name(loaded: str, names: set[str]) -> str | None:
    for candidate in (loaded, loaded.removesuffix(":latest"), f"{loaded}:latest"):
        if candidate in names:
            return candidate
    return None


def gateway_of(request: Request) -> Gateway:
    """The app's gateway, built at start-up (the lifespan, or build_sim_app)."""
    gateway: Gateway = request.app.state.gateway
    return gateway
