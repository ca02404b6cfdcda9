"""Prometheus collectors on a per-app registry, and the ASGI middleware that counts every HTTP request."""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Latency buckets tuned for a proxy: sub-millisecond overheads up to minute-long cold loads.
_LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_OVERHEAD = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.1)
_LOAD = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300)
_SOLVE = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5)

T0_KEY = "swarm.t0"  # scope key: perf_counter() when the request entered the app


class Metrics:
    """All collectors of one app. A registry per app keeps several apps in one process (tests) apart."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "swarm_http_requests",
            "HTTP requests by route template, method and status",
            ("route", "method", "status"),
            registry=r,
        )
        self.latency = Histogram(
            "swarm_http_request_duration_seconds",
            "HTTP request latency (until the response started)",
            ("route",),
            buckets=_LATENCY,
            registry=r,
        )
        self.overhead = Histogram(
            "swarm_proxy_overhead_seconds",
            "Router time of a proxied call, upstream excluded",
            ("api",),
            buckets=_OVERHEAD,
            registry=r,
        )
        self.proxied = Counter(
            "swarm_proxy_requests",
            "Proxied model calls by API family, model and whether it was auto-routed",
            ("api", "model", "routed"),
            registry=r,
        )
        self.tokens = Counter("swarm_tokens", "Tokens of proxied calls", ("model", "kind"), registry=r)
        self.loads = Counter(
            "swarm_model_loads",
            "Model loads observed in responses (load_duration > 0)",
            ("model",),
            registry=r,
        )
        self.evictions = Counter(
            "swarm_model_evictions", "Models the scheduler evicted, with why", ("model", "reason"), registry=r
        )
        self.sched_loads = Counter(
            "swarm_scheduler_loads",
            "Models a GPU's scheduler brought in for queued calls of every kind, with why",
            ("gpu", "model", "reason"),
            registry=r,
        )
        self.queue_depth = Gauge(
            "swarm_scheduler_queue_depth", "Calls waiting in a GPU's scheduler, by model", ("gpu", "model"), registry=r
        )
        self.tenant_depth = Gauge(
            "swarm_scheduler_tenant_queue_depth",
            "Calls waiting in a GPU's scheduler, by tenant",
            ("gpu", "tenant"),
            registry=r,
        )
        self.queue_wait = Histogram(
            "swarm_scheduler_wait_seconds",
            "Time a call waited in the scheduler before dispatch",
            ("gpu", "kind"),
            buckets=_LATENCY,
            registry=r,
        )
        self.dispatches = Counter(
            "swarm_scheduler_dispatches", "Calls dispatched by a GPU's scheduler", ("gpu", "kind"), registry=r
        )
        self.load_seconds = Histogram(
            "swarm_model_load_duration_seconds",
            "load_duration reported by the backend",
            ("model",),
            buckets=_LOAD,
            registry=r,
        )
        self.solve_seconds = Histogram(
            "swarm_routing_solve_seconds", "Routing decision time", ("source",), buckets=_SOLVE, registry=r
        )
        self.errors = Counter("swarm_errors", "Errors by type", ("type",), registry=r)
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: Any, *values: str) -> Any:
        """metric.labels(*values), memoised: labels() validates and locks on every call, several times per
        proxied request. The memo is dropped when it grows large (user-chosen model names)."""
        key = (id(metric), values)
        found = self._children.get(key)
        if found is None:
            if len(self._children) > 10_000:
                self._children.clear()
            found = self._children[key] = metric.labels(*values)
        return found

    def observe_usage(self, model: str, final: dict[str, Any]) -> int:
        """Count tokens and loads from an Ollama final chunk; returns the tokens it carried."""
        prompt = int(final.get("prompt_eval_count") or 0)
        completion = int(final.get("eval_count") or 0)
        if prompt:
            self.child(self.tokens, model, "prompt").inc(prompt)
        if completion:
            self.child(self.tokens, model, "completion").inc(completion)
        load_ns = final.get("load_duration") or 0
        if isinstance(load_ns, int | float) and load_ns > 0:
            self.child(self.loads, model).inc()
            self.child(self.load_seconds, model).observe(load_ns / 1e9)
        return prompt + completion

    def observe_solve(self, seconds: float, source: str) -> None:
        self.child(self.solve_seconds, source).observe(seconds)

    def observe_error(self, kind: str) -> None:
        self.child(self.errors, kind).inc()


class MetricsMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware: that costs a task per request). Labels by route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        scope[T0_KEY] = started
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                self.metrics.child(self.metrics.latency, _route(scope)).observe(time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            self.metrics.child(self.metrics.requests, _route(scope), scope.get("method", ""), str(status)).inc()


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


def install_metrics(app: FastAPI) -> Metrics:
    """Attach a fresh registry and the counting middleware to `app`."""
    metrics = Metrics()
    app.state.metrics = metrics
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return metrics


def metrics_of(app: Any) -> Metrics | None:
    found = getattr(app.state, "metrics", None)
    return found if isinstance(found, Metrics) else None


def scheduler_listener(metrics: Metrics, gpu: str, queue_of: Any) -> Any:
    """A GPU scheduler event -> the collectors (loads, evictions, waits, queue depth per model)."""

    shown: dict[tuple[Any, str], int] = {}  # (gauge, label value) -> the depth last set (0s stay until they change)

    def on_event(event: Any) -> None:
        if event.kind == "evict":
            metrics.child(metrics.evictions, event.model, _reason(event.reason)).inc()
        elif event.kind == "load":  # a reservation: the first call dispatched to the model loads it
            metrics.child(metrics.sched_loads, gpu, event.model, _reason(event.reason)).inc()
        elif event.kind == "dispatch":
            metrics.child(metrics.dispatches, gpu, event.reason).inc()
            metrics.child(metrics.queue_wait, gpu, event.reason).observe(event.waited_s)
        if event.kind in ("queued", "dispatch", "cancelled", "load_failed", "unscheduled"):
            queue = list(queue_of())
            depth: dict[tuple[Any, str], int] = {}
            for w in queue:
                for key in ((metrics.queue_depth, next(iter(w.req.candidates))), (metrics.tenant_depth, w.req.tenant)):
                    depth[key] = depth.get(key, 0) + 1
            # only the gauges that changed: the labels that were non-zero, and those that are now
            for key in [k for k, n in shown.items() if n] + [k for k in depth if k not in shown or not shown[k]]:
                if shown.get(key) != (n := depth.get(key, 0)):
                    shown[key] = n
                    metrics.child(key[0], gpu, str(key[1])).set(n)

    return on_event


def _reason(text: str) -> str:
    """A bounded label from a scheduler event's reason (its free text names models and counts)."""
    for prefix in ("free memory", "serves", "keeps"):
        if text.startswith(prefix):
            return prefix.replace(" ", "_")
    return "other"
