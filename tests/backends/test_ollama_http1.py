"""OllamaBackend over its lean HTTP/1.1 transport against a real HTTP server (aiohttp.web): same shapes, deadlines
and errors as over httpx, plus the raw NDJSON relay the proxy uses and the pool's connection handling."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from app.backends.ollama import OllamaBackend
from app.core.errors import BackendTimeout, BackendUnavailable, BadBackendResponse, ModelNotFound

pytestmark = pytest.mark.anyio
SEEN: list[dict[str, Any]] = []
LONG_CONTEXT = list(range(30_000))  # a final /api/generate chunk carries `context`: one line of ~170 KB


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    SEEN.append(body)
    model = body["model"]
    if model == "missing":
        return web.json_response({"error": f"model '{model}' not found"}, status=404)
    if model == "crash":
        return web.json_response({"error": "llama runner process has terminated"}, status=500)
    if model == "slow":
        await asyncio.sleep(0.3)
    if model == "stuck":
        await asyncio.sleep(5)
    if not body.get("stream", True):
        msg = {"role": "assistant", "content": "hi"}
        return web.json_response({"model": model, "message": msg, "done": True, "eval_count": 3})
    resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    await resp.prepare(request)
    for word in ("a", "b"):
        await resp.write(json.dumps({"model": model, "message": {"content": word}, "done": False}).encode() + b"\n")
    if model == "broken":
        request.transport.close()  # type: ignore[union-attr]
        return resp
    if model != "no-done":
        final = {"model": model, "message": {"content": ""}, "done": True, "eval_count": 2, "context": LONG_CONTEXT}
        await resp.write(json.dumps(final).encode() + b"\n")
    await resp.write_eof()
    return resp


@pytest.fixture
async def backend() -> AsyncIterator[OllamaBackend]:
    app = web.Application()
    app.router.add_post("/api/chat", chat)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    backend = OllamaBackend(None, str(server.make_url("")).rstrip("/"), deadline_s=1.0, http1=True)
    yield backend
    await backend.aclose()
    await server.close()


def ask(model: str, **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hello"}], **extra}


async def test_chat_and_stream(backend: OllamaBackend) -> None:
    out = await backend.chat(ask("m"))
    assert out["message"]["content"] == "hi" and SEEN[-1]["keep_alive"] == "10m" and SEEN[-1]["stream"] is False
    chunks = [c async for c in backend.chat_stream(ask("m"))]
    assert [c["message"]["content"] for c in chunks] == ["a", "b", ""]
    assert chunks[-1]["done"] is True and len(chunks[-1]["context"]) == len(LONG_CONTEXT)


async def test_slow_first_byte_within_deadline(backend: OllamaBackend) -> None:
    assert (await backend.chat(ask("slow")))["done"] is True


@pytest.mark.parametrize(
    ("model", "stream", "error", "needle"),
    [
        ("missing", False, ModelNotFound, "model 'missing' not found"),
        ("missing", True, ModelNotFound, "not found"),
        ("crash", False, BadBackendResponse, "HTTP 500: llama runner process has terminated"),
        ("stuck", False, BackendTimeout, "deadline"),
        ("stuck", True, BackendTimeout, "deadline"),
        ("broken", True, BadBackendResponse, "broke mid-way|ended before"),
        ("no-done", True, BadBackendResponse, "ended before a done=true chunk"),
    ],
)
async def test_errors(backend: OllamaBackend, model: str, stream: bool, error: type[Exception], needle: str) -> None:
    with pytest.raises(error, match=needle):
        if stream:
            [c async for c in backend.chat_stream(ask(model))]
        else:
            await backend.chat(ask(model))


async def test_crash_keeps_upstream_status(backend: OllamaBackend) -> None:
    with pytest.raises(BadBackendResponse) as info:
        await backend.chat(ask("crash"))
    assert info.value.status == 500


async def test_connection_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = OllamaBackend(None, f"http://127.0.0.1:{port}", http1=True)
    with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{port}"):
        await dead.chat(ask("m"))
    with pytest.raises(BackendUnavailable):
        await dead.ping()
    await dead.aclose()
