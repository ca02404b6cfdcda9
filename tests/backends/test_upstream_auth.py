"""Upstream auth: URL credentials become Basic, configured headers go on every call of both transports (JSON calls,
streams, raw relays), bad headers stop the service at start-up, credentials never show in URLs we print."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.backends.ollama import OllamaBackend
from app.backends.transport import make_transport
from app.core.errors import ConfigError
from app.core.settings import load_settings
from app.core.upstream import redact_url, split_credentials, upstream

pytestmark = pytest.mark.anyio
SEEN: list[dict[str, str]] = []


async def record(request: web.Request) -> web.StreamResponse:
    SEEN.append(dict(request.headers))
    if request.path == "/api/chat":
        line = {"model": "m", "message": {"role": "assistant", "content": "hi"}, "done": True}
        return web.Response(body=json.dumps(line) + "\n", content_type="application/x-ndjson")
    return web.json_response({"version": "0.13.5"})


@pytest.fixture(params=["lean", "httpx"])
async def server(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, str]]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    srv = TestServer(app, host="127.0.0.1")
    await srv.start_server()
    yield request.param, str(srv.make_url("")).rstrip("/")
    await srv.close()


async def test_both_transports_send_basic_auth_and_headers_on_every_call(server: tuple[str, str]) -> None:
    kind, url = server
    with_creds = url.replace("http://", "http://ollama%40team:p%3Ass@")
    transport = make_transport(kind, with_creds, headers={"X-Tenant": "blue"})  # type: ignore[arg-type]
    backend = OllamaBackend(transport)
    SEEN.clear()
    await backend.version()
    [c async for c in backend.chat_stream({"model": "m", "messages": [{"role": "user", "content": "a"}]})]
    reply = await backend.relay_compat("/v1/chat/completions", b'{"model":"m"}')
    assert b"".join([p async for p in reply.body])
    basic = "Basic " + base64.b64encode(b"ollama@team:p:ss").decode()
    assert len(SEEN) == 3
    for headers in SEEN:
        assert headers["Authorization"] == basic and headers["X-Tenant"] == "blue"
    assert backend.name == url and "p%3Ass" not in backend.name  # what logs and /tenants/me show
    await backend.aclose()


async def test_a_configured_authorization_wins_over_url_credentials(server: tuple[str, str]) -> None:
    kind, url = server
    transport = make_transport(kind, url.replace("http://", "http://u:p@"), headers={"Authorization": "Bearer t0k"})  # type: ignore[arg-type]
    SEEN.clear()
    await OllamaBackend(transport).version()
    assert SEEN[0]["Authorization"] == "Bearer t0k"
    await transport.aclose()


def test_credentials_helpers() -> None:
    assert split_credentials("http://localhost:11434") == ("http://localhost:11434", {})
    clean, auth = split_credentials("https://me:secret@ollama.example:8443/base")
    assert clean == "https://ollama.example:8443/base" and auth == {"Authorization": "Basic bWU6c2VjcmV0"}
    assert redact_url("https://me:secret@ollama.example/x") == "https://***@ollama.example/x"
    assert redact_url("http://localhost:11434") == "http://localhost:11434" and redact_url(None) is None
    with pytest.raises(ValueError, match="not a valid HTTP token"):
        upstream("http://h", {"Bad Name": "x"})
    with pytest.raises(ValueError, match="one line"):
        upstream("http://h", {"X-Evil": "a\r\nHost: other"})


def test_headers_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_OLLAMA_HEADERS", '{"Authorization": "Bearer abc", "X-Org": "7"}')
    monkeypatch.setenv("SWARM_OLLAMA_BASE_URL", "http://user:pw@ollama:11434")
    settings = load_settings()
    assert settings.ollama_headers == {"Authorization": "Bearer abc", "X-Org": "7"}
    public: dict[str, Any] = settings.public_dump()
    assert "ollama_headers" not in public and public["ollama_base_url"] == "http://***@ollama:11434"
    assert "Bearer abc" not in repr(settings)
    monkeypatch.setenv("SWARM_OLLAMA_HEADERS", '{"Host": "x"}')
    with pytest.raises(ConfigError, match=r"SWARM_OLLAMA_HEADERS: .*set by the router itself"):
        load_settings()
