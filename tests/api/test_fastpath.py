"""The hot-route dispatcher (api/fastpath.py): which routes it takes, that it really skips FastAPI's router, and
that what the router would have given (metrics labels, exception handlers, 500s, CORS) is still there."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRouter as FastAPIRouter
from fastapi.testclient import TestClient

from app.api import errors
from app.api.fastpath import HOT_PATHS, HotRoutes, hot_table
from app.api.routes import anthropic, ollama, openai
from app.core.errors import ValidationFailed
from app.main import create_app
from tests.api.conftest import Stack, router_settings, stack

CHAT = {"model": "gemma2:2b", "messages": [{"role": "user", "content": "hi"}], "stream": False}


def test_table_holds_exactly_the_request_only_hot_routes() -> None:
    table = hot_table([ollama.router, openai.router, anthropic.router])
    assert {path for _, path in table} == HOT_PATHS and {m for m, _ in table} == {"POST"}
    other = APIRouter()

    @other.post("/api/chat")
    async def with_query(request: Request, verbose: bool = False) -> JSONResponse:
        return JSONResponse({})

    assert hot_table([other]) == {}  # needs FastAPI to parse a parameter: left to the normal route


def test_the_app_adds_nothing_the_fast_path_would_skip(tmp_path: Path) -> None:
    # Dependencies given to the app or to include_router would not run for hot routes: there are none.
    app = create_app(router_settings(tmp_path))
    assert not app.router.dependencies and not ollama.router.dependencies and not openai.router.dependencies


@pytest.fixture(scope="module")
def cors_live(tmp_path_factory: pytest.TempPathFactory) -> Any:
    with stack(tmp_path_factory.mktemp("fast"), cors_origins=["http://ui.example"]) as s:
        yield s


def test_hot_routes_skip_the_router_and_keep_metrics_and_cors(
    cors_live: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    original = FastAPIRouter.__call__
    url = cors_live.router_url
    port = int(url.rsplit(":", 1)[1])

    async def spy(self: Any, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["server"][1] == port:  # not the sim server (same process)
            calls.append(scope["path"])
        await original(self, scope, receive, send)

    monkeypatch.setattr(FastAPIRouter, "__call__", spy)
    resp = httpx.post(url + "/api/chat", json=CHAT, headers={"origin": "http://ui.example"})
    assert resp.status_code == 200 and resp.json()["done"] is True
    assert resp.headers["access-control-allow-origin"] == "http://ui.example"
    assert httpx.post(url + "/v1/chat/completions", json=CHAT).status_code == 200
    assert httpx.get(url + "/api/tags").status_code == 200
    assert set(calls) == {"/api/tags"}  # only the non-hot request went through FastAPI's router
    metrics = httpx.get(url + "/metrics").text
    assert 'swarm_http_requests_total{method="POST",route="/api/chat",status="200"} 1.0' in metrics
    assert 'route="/v1/chat/completions",status="200"} 1.0' in metrics


def test_errors_use_the_apps_handlers_and_unknown_ones_are_500s() -> None:
    hot = APIRouter()

    @hot.post("/api/chat")
    async def invalid(request: Request) -> JSONResponse:
        raise ValidationFailed("messages: must be a list")

    @hot.post("/api/generate")
    async def broken(request: Request) -> JSONResponse:
        raise RuntimeError("bug")

    app = FastAPI()
    errors.install(app)
    app.include_router(hot)
    app.add_middleware(HotRoutes, routers=[hot])
    client = TestClient(app, raise_server_exceptions=False)
    resp = client.post("/api/chat", json={})
    assert resp.status_code == 422 and "messages: must be a list" in resp.text
    assert client.post("/api/generate", json={}).status_code == 500
