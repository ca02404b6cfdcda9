"""Direct dispatch of the proxy's hot endpoints: the innermost user middleware, so metrics, the body limit and
CORS still apply, but FastAPI's routing (a regex per route), its exception/exit-stack middlewares and its
dependency solving are skipped (benchmarks/proxy_overhead.py measures what that saves; the README has the numbers).

The routes come from the routers given (included in the app without a prefix); only those whose endpoint takes
nothing but the `Request` are dispatched here (checked from FastAPI's own dependency model). Everything else,
and any request that does not match exactly, goes the normal way. Errors are handled by the app's registered
exception handlers, as FastAPI would.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.routing import APIRoute, APIRouter
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

HOT_PATHS = frozenset(
    {
        *("/api/chat", "/api/generate", "/api/embed"),
        *("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/messages"),
    }
)
Endpoint = Callable[[Request], Awaitable[Response]]


def request_only(route: APIRoute) -> bool:
    """The endpoint needs no parameter, body model or dependency FastAPI would have to resolve."""
    d = route.dependant
    params = (d.path_params, d.query_params, d.header_params, d.cookie_params, d.body_params, d.dependencies)
    return d.request_param_name is not None and not any(params)


def hot_table(routers: list[APIRouter]) -> dict[tuple[str, str], APIRoute]:
    table: dict[tuple[str, str], APIRoute] = {}
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and route.path in HOT_PATHS and request_only(route):
                for method in route.methods or ():
                    table.setdefault((method, route.path), route)
    return table


class HotRoutes:
    def __init__(self, app: ASGIApp, routers: list[APIRouter]) -> None:
        self.app = app
        self.table = hot_table(routers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = self.table.get((scope["method"], scope["path"]))
        if route is None or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        scope["route"] = route  # what the metrics middleware labels by, as after FastAPI's routing
        request = Request(scope, receive, send)
        endpoint: Endpoint = route.endpoint
        try:
            response = await endpoint(request)
        except Exception as exc:
            handler = _handler_for(scope["app"].exception_handlers, exc)
            if handler is None:
                raise  # the server-error middleware answers 500
            response = await handler(request, exc)
        await response(scope, receive, send)


def _handler_for(handlers: dict[Any, Any], exc: Exception) -> Any:
    for cls in type(exc).__mro__:
        if cls in handlers:
            return handlers[cls]
    return None
