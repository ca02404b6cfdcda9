"""OllamaBackend over both transports (the service's lean HTTP/1.1 pool and httpx) against a real HTTP server
(aiohttp.web): the same cases give the same shapes, deadlines and typed errors on each."""

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
from app.backends.transport import TransportKind, make_transport
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
    if model == "html":
        return web.Response(text="<html>proxy error</html>", content_type="text/html")
    if model == "no-route":
        return web.Response(text="404 page not found", status=404)
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
    if model in ("error-line", "bad-line"):
        last = (
            b'{"error":"an error was encountered while running the model"}'
            if model == "error-line"
            else b'{"done": fal'
        )
        await resp.write(last + b"\n")
        await resp.write_eof()
        return resp
    if model != "no-done":
        final = {"model": model, "message": {"content": ""}, "done": True, "eval_count": 2, "context": LONG_CONTEXT}
        await resp.write(json.dumps(final).encode() + b"\n")
    await resp.write_eof()
    return resp


TRANSPORTS = ("lean", "httpx")


@pytest.fixture(params=TRANSPORTS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[OllamaBackend]:
    app = web.Application()
    app.router.add_post("/api/chat", chat)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    backend = OllamaBackend(make_transport(request.param, str(server.make_url("")).rstrip("/"), deadline_s=1.0))
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
        ("html", False, BadBackendResponse, "invalid JSON"),
        ("no-route", False, BadBackendResponse, "HTTP 404: 404 page not found"),
        ("error-line", True, BadBackendResponse, "error was encountered"),
        ("bad-line", True, BadBackendResponse, "invalid JSON"),
    ],
)
async def test_errors(backend: OllamaBackend, model: str, stream: bool, error: type[Exception], needle: str) -> None:
    with pytest.raises(error, match=needle):
        if stream:
            [c async for c in backend.chat_stream(ask(model))]
        else:
            await backend.chat(ask(model))


async def test_relay_lines_are_the_upstream_bytes(backend: OllamaBackend) -> None:
    blocks = [b async for b in backend.relay_lines(ask("m"), chat=True)]
    raw = b"".join(block for block, _ in blocks)
    lines = raw.splitlines()
    assert [json.loads(line)["message"]["content"] for line in lines] == ["a", "b", ""]
    assert lines[0] == json.dumps({"model": "m", "message": {"content": "a"}, "done": False}).encode()
    finals = [final for _, final in blocks if final is not None]
    assert len(finals) == 1 and blocks[-1][1] is finals[0] and finals[0]["eval_count"] == 2


async def test_a_requests_num_ctx_reaches_ollama_on_every_call(backend: OllamaBackend) -> None:
    for ctx in (2048, 8192, 16384):
        await backend.chat(ask("ctx-model", options={"num_ctx": ctx}))
        assert SEEN[-1]["options"]["num_ctx"] == ctx
    await backend.chat(ask("ctx-model", options={"num_ctx": 8192}, _reload=True))
    assert SEEN[-1]["options"]["num_ctx"] == 8192 and "_reload" not in SEEN[-1]


async def test_crash_keeps_upstream_status(backend: OllamaBackend) -> None:
    with pytest.raises(BadBackendResponse) as info:
        await backend.chat(ask("crash"))
    assert info.value.status == 500


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_connection_refused(kind: TransportKind) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = OllamaBackend(make_transport(kind, f"http://127.0.0.1:{port}"))
    with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{port}"):
        await dead.chat(ask("m"))
    with pytest.raises(BackendUnavailable):
        await dead.ping()
    await dead.aclose()
