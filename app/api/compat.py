"""Shared core of the OpenAI / Ollama compatibility proxies: who serves a call, model="auto", headers, usage."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

from fastapi import Request
from fastapi.responses import Response

from app.api.deps import TenantCtx, get_tenant, is_admin_key
from app.api.errors import status_for
from app.api.metrics import T0_KEY, Metrics, metrics_of
from app.backends.base import JSON, Backend
from app.core.errors import BadBackendResponse, Forbidden, InfeasibleError, SwarmError, ValidationFailed
from app.domain.knobs import RoutingParams
from app.domain.models import Subtask
from app.execution.decomposer import classify, estimate_difficulty
from app.execution.runtime import Runtime
from app.execution.state import GpuState
from app.routing import route_single
from app.storage.models import Tenant

log = logging.getLogger("swarm.proxy")
T = TypeVar("T")

AUTO = "auto"
ROUTED_HEADER = "x-swarm-routed-model"
OVERHEAD_HEADER = "x-swarm-overhead-ms"
LOADED_TTL_S = 1.0  # how stale the routed-over loaded set may be
OPEN_TTL_S = 1.0  # how long "no keyed tenant exists" is trusted before asking the DB again
FLUSH_DELAY_S = 2.0  # token usage is written to the DB in batches, off the request path


class BadRequest(ValidationFailed):
    """A malformed compat request; `param` names the offending field."""

    code = "invalid_request"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class Unsupported(SwarmError):
    code = "not_implemented"


class ClientGone(SwarmError):
    code = "client_disconnected"


def compat_status(exc: SwarmError) -> int:
    """HTTP status of an error on a compat endpoint (input errors are 400, as in OpenAI and Ollama)."""
    if isinstance(exc, Unsupported):
        return 501
    if isinstance(exc, ClientGone):
        return 499
    if isinstance(exc, BadBackendResponse) and exc.status is not None:
        return exc.status
    if isinstance(exc, ValidationFailed):
        return 400
    return status_for(exc)


def dumps(obj: Any) -> bytes:
    # ensure_ascii keeps U+2028 escaped: ollama-python splits lines on it otherwise.
    return json.dumps(obj, separators=(",", ":")).encode()


def parse_body(raw: bytes) -> JSON:
    if not raw.strip():
        raise BadRequest("missing request body")
    try:
        body = json.loads(raw)
    except ValueError as exc:
        raise BadRequest(f"invalid JSON body: {exc}") from None
    except RecursionError:
        raise BadRequest("invalid JSON body: nested too deeply") from None
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    return body


def require_model(body: JSON, *keys: str) -> str:
    for key in keys or ("model",):
        value = body.get(key)
        if isinstance(value, str) and value.strip():
            return value
    raise BadRequest(f"{keys[0] if keys else 'model'} is required", keys[0] if keys else "model")


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
            raise
        if first is None:
            await close_stream(stream)
            raise BadBackendResponse("the backend closed the stream without a chunk")
        return first

    def overhead_ms(self) -> float:
        return max(0.0, (time.perf_counter() - self.t0 - self.upstream_s) * 1e3)

    def headers(self) -> dict[str, str]:
        ms = self.overhead_ms()
        if self.gateway.metrics is not None:
            self.gateway.metrics.child(self.gateway.metrics.overhead, self.api).observe(ms / 1e3)
        return {ROUTED_HEADER: self.model, OVERHEAD_HEADER: f"{ms:.3f}"}

    def finish(self, final: JSON) -> None:
        """Account a final response: tokens, loads, the tenant's budget."""
        self.gateway.account(self, final)

    async def complete(self, request: Request, work: Awaitable[JSON]) -> JSON:
        """A non-streaming upstream call: cancelled if the client leaves, accounted when it answers."""
        final = await until_disconnect(request, self.upstream(work))
        self.finish(final)
        return final


async def close_stream(stream: AsyncIterator[Any]) -> None:
    """Close a backend stream (its finally blocks close the upstream HTTP response)."""
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()


async def until_disconnect(request: Request, work: Awaitable[T]) -> T:
    """Await `work`; if the client hangs up first, cancel it (and the upstream call inside) and raise ClientGone."""
    watch = DisconnectWatch(request.receive)
    try:
        return await work
    except asyncio.CancelledError:
        if watch.absorb():
            raise ClientGone("client disconnected; upstream request cancelled") from None
        raise
    finally:
        watch.stop()


class DisconnectWatch:
    """Cancels the current task when the client disconnects (one task reading `receive`)."""

    def __init__(self, receive: Callable[[], Awaitable[Any]]) -> None:
        self.me = asyncio.current_task()
        self.gone = False
        self._task = asyncio.create_task(self._watch(receive))

    async def _watch(self, receive: Callable[[], Awaitable[Any]]) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        if self.me is not None:
            self.me.cancel()

    def absorb(self) -> bool:
        """Inside `except CancelledError`: True, with the cancellation undone, when it came from a disconnect."""
        if self.gone and self.me is not None:
            self.me.uncancel()
            return True
        return False

    def stop(self) -> None:
        self._task.cancel()


class RelayResponse(Response):
    """A streaming response for relayed upstream bytes, lighter than Starlette's StreamingResponse (which runs an
    anyio task group per response): one watcher task turns the client's disconnect into cancelling the relay,
    and the last block goes out together with the end of the chunked body (one write instead of two).

    `blocks` yields (bytes, is_last); it is closed (aclose) whatever happens, which closes the upstream call."""

    def __init__(self, blocks: AsyncIterator[tuple[bytes, bool]], headers: dict[str, str], media_type: str):
        super().__init__(None, 200, headers, media_type)
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]  # chunked, not empty
        self.blocks = blocks

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        except BaseException:
            await close_stream(self.blocks)
            raise
        watch = DisconnectWatch(receive)
        try:
            last = False
            async for data, last in self.blocks:
                await send({"type": "http.response.body", "body": data, "more_body": not last})
                if last:
                    break
            if not last:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            if not watch.absorb():
                raise  # otherwise the client left: nothing more to send
        finally:
            watch.stop()
            await close_stream(self.blocks)


class Gateway:
    """Resolves who serves a compat call. The plain gateway (the sim-ollama server) has no tenants or routing."""

    supports_auto = False

    def __init__(self, backend: Backend, metrics: Metrics | None = None) -> None:
        self._backend = backend
        self.metrics = metrics

    async def backend_for(self, request: Request) -> Backend:
        return self._backend

    async def begin(
        self, request: Request, api: str, model: str, text: Callable[[], str], max_tokens: Any = None
    ) -> Call:
        t0 = float(request.scope.get(T0_KEY) or time.perf_counter())
        return Call(self, self._backend, model, False, api, t0)

    async def admin_backend(self, request: Request, path: str) -> Backend:
        return self._backend

    def account(self, call: Call, final: JSON) -> None:
        if self.metrics is not None:
            self.metrics.child(self.metrics.proxied, call.api, call.model, str(call.routed).lower()).inc()
            self.metrics.observe_usage(call.model, final)

    def observe_error(self, exc: SwarmError | str) -> None:
        if self.metrics is not None:
            self.metrics.observe_error(exc if isinstance(exc, str) else exc.code)


@dataclass
class UsageSink:
    """Token usage per tenant, written in batches in a worker thread so the hot path never waits on SQLite."""

    runtime: Runtime
    pending: dict[str, int] = field(default_factory=dict)
    writing: dict[str, int] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, tenant: Tenant, tokens: int) -> None:
        if tokens <= 0:
            return
        if tenant.token_budget is not None:
            # The cached tenant object is shared by requests with the same key: its budget check sees this now.
            tenant.tokens_used += tokens
        self.pending[tenant.id] = self.pending.get(tenant.id, 0) + tokens
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(FLUSH_DELAY_S)
        await self.flush()

    async def flush(self) -> None:
        with self.lock:  # brief: a reader holds it only around one DB read
            batch, self.pending = self.pending, {}
            for tenant_id, tokens in batch.items():
                self.writing[tenant_id] = self.writing.get(tenant_id, 0) + tokens
        for tenant_id, tokens in batch.items():
            try:
                await asyncio.to_thread(self._write, tenant_id, tokens)
            except Exception:  # a failed write must never fail a request; the tokens are logged instead
                log.exception("could not record %d tokens for tenant %s", tokens, tenant_id)

    def _write(self, tenant_id: str, tokens: int) -> None:
        with self.lock:  # the DB increment and leaving `writing` are one step for readers
            try:
                self.runtime.repo.add_tokens_used(tenant_id, tokens)
            finally:
                self.writing[tenant_id] -= tokens

    def tokens_used(self, tenant_id: str) -> tuple[Tenant | None, int]:
        """(the tenant as stored, its tokens including those not written yet); call it in a worker thread."""
        with self.lock:
            tenant = self.runtime.repo.get_tenant(tenant_id)
            unwritten = self.pending.get(tenant_id, 0) + self.writing.get(tenant_id, 0)
        return tenant, (tenant.tokens_used if tenant is not None else 0) + unwritten


class TenantGateway(Gateway):
    """The router: the caller's tenant picks the GPU; model="auto" picks the model with the fast path."""

    supports_auto = True

    def __init__(self, runtime: Runtime, metrics: Metrics | None) -> None:
        super().__init__(runtime.pool.default.backend, metrics)
        self.runtime = runtime
        self.usage = UsageSink(runtime)
        d = runtime.settings.routing
        self.params = RoutingParams(
            lambda_token=d.lambda_token,
            lambda_switch=d.lambda_switch,
            token_scale=d.token_scale,
            switch_t_scale_ms=d.switch_t_scale_ms,
        )
        self._refreshing: dict[int, asyncio.Task[Any]] = {}
        self._open: Tenant | None = None
        self._open_until = 0.0

    async def _tenant(self, request: Request) -> TenantCtx:
        authorization = request.headers.get("authorization")
        tenant = await self._open_tenant()
        if tenant is None:
            return await get_tenant(request, authorization)
        # Open mode (no keyed tenant): OpenAI clients must send some key; any key is accepted, as Ollama does.
        _, _, key = (authorization or "").partition(" ")
        gpu = self.runtime.pool.default
        return TenantCtx(tenant, gpu, self.runtime, gpu.capacity_gb, is_admin_key(self.runtime, key.strip() or None))

    async def _open_tenant(self) -> Tenant | None:
        """The default tenant while no keyed tenant exists, read from the DB at most every OPEN_TTL_S."""
        now = time.monotonic()
        if now >= self._open_until:
            repo = self.runtime.repo
            keyed = await asyncio.to_thread(repo.keyed_tenant_count)
            self._open = None if keyed else await asyncio.to_thread(repo.ensure_default_tenant)
            self._open_until = now + OPEN_TTL_S
        return self._open

    async def backend_for(self, request: Request) -> Backend:
        return (await self._tenant(request)).gpu.backend

    async def begin(
        self, request: Request, api: str, model: str, text: Callable[[], str], max_tokens: Any = None
    ) -> Call:
        t0 = float(request.scope.get(T0_KEY) or time.perf_counter())
        ctx = await self._tenant(request)
        ctx.check_budget()
        routed = model == AUTO
        if routed:
            model = await self._route(ctx, text(), max_tokens)
        return Call(self, ctx.gpu.backend, model, routed, api, t0, ctx.tenant)

    async def admin_backend(self, request: Request, path: str) -> Backend:
        ctx = await self._tenant(request)
        if not ctx.is_admin:
            raise Forbidden(f"{path} needs the admin key")
        return ctx.gpu.backend

    def account(self, call: Call, final: JSON) -> None:
        super().account(call, final)
        if call.tenant is not None:
            tokens = int(final.get("prompt_eval_count") or 0) + int(final.get("eval_count") or 0)
            self.usage.add(call.tenant, tokens)

    async def _route(self, ctx: TenantCtx, text: str, max_tokens: Any) -> str:
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
        names = {a.name for a in ctx.agents}
        resident = [n for n in (_catalog_name(m, names) for m in loaded) if n is not None]
        started = time.perf_counter()
        try:
            choice = route_single(sub, ctx.agents, resident, ctx.gpu_vram_gb, self.params, self.runtime.estimator)
        except InfeasibleError as exc:
            field = "max_tokens" if max_tokens else "messages"
            raise BadRequest(f"{field}: no model can serve this request ({exc.message})", field) from None
        if self.metrics is not None:
            self.metrics.observe_solve(time.perf_counter() - started, "fast_path")
        return choice.model

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
    """The app's gateway: set explicitly (sim-ollama), else built once around the router's runtime."""
    state = request.app.state
    gateway = getattr(state, "gateway", None)
    if gateway is None or (isinstance(gateway, TenantGateway) and gateway.runtime is not state.runtime):
        gateway = TenantGateway(state.runtime, metrics_of(request.app))
        state.gateway = gateway
    assert isinstance(gateway, Gateway)
    return gateway


def last_user_text(messages: Any) -> str:
    """The text auto-routing classifies: the last user message (text parts of a multi-part content)."""
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content or "")
    return ""
