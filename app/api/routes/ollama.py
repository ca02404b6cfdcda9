"""Ollama-native proxy (/api/*, HEAD /): bodies pass through untouched except model="auto"; Ollama's error shape."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse

from app.api.compat_check import check_embed_input, check_keep_alive, check_native
from app.api.errors import ollama_error
from app.api.gateway import AUTO, Call, gateway_of
from app.api.jsonio import check_relayed, dumps, last_user_text, parse_body, require_model
from app.api.relay import RelayResponse
from app.backends.base import JSON
from app.core.errors import BadBackendResponse, BadRequest, SwarmError

router = APIRouter(tags=["ollama"])

JSON_TYPE = "application/json; charset=utf-8"
NDJSON_TYPE = "application/x-ndjson"
STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
MANAGE_PATHS = ("/api/pull", "/api/push", "/api/create", "/api/copy")


async def _guard(request: Request, work: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await work()
    except SwarmError as exc:
        gateway_of(request).observe_error(exc)
        return ollama_error(exc)


def _json(body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(body), media_type=JSON_TYPE, headers=headers)


# ---- liveness ------------------------------------------------------------------------------------------


@router.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
async def root() -> Response:
    return Response("Ollama is running", media_type="text/plain; charset=utf-8")


@router.api_route("/api/version", methods=["GET", "HEAD"], include_in_schema=False)
async def version(request: Request) -> Response:
    async def work() -> Response:
        backend = await gateway_of(request).backend_for(request)
        return _json({"version": await backend.version()})

    return await _guard(request, work)


# ---- inference -----------------------------------------------------------------------------------------


@router.post("/api/chat")
async def chat(request: Request) -> Response:
    return await _guard(request, lambda: _infer(request, chat=True))


@router.post("/api/generate")
async def generate(request: Request) -> Response:
    return await _guard(request, lambda: _infer(request, chat=False))


async def _infer(request: Request, *, chat: bool) -> Response:
    raw = await request.body()
    body = parse_body(raw)
    model = require_model(body)
    check_native(body, chat=chat)

    def text() -> str:
        return last_user_text(body.get("messages")) if chat else str(body.get("prompt") or "")

    options = body.get("options")
    max_tokens = options.get("num_predict") if isinstance(options, dict) else None
    tools = chat and bool(body.get("tools"))
    call = await gateway_of(request).begin(request, "ollama", model, text, max_tokens, tools=tools)
    if call.routed:
        body["model"] = call.model
        raw = dumps(body)
    stream = body.get("stream", True) is not False
    backend = call.backend
    if not stream:
        work = backend.chat(body) if chat else backend.generate(body)
        final = await call.complete(request, work)
        return _json(final, call.headers())
    relay = backend.relay_lines(body, chat=chat)
    first = await call.first(request, relay)
    headers = {**call.headers(), **STREAM_HEADERS}
    return RelayResponse(_relay(call, first, relay), headers, NDJSON_TYPE, lambda: call.end(relay))


async def _relay(
    call: Call, first: tuple[bytes, JSON | None], relay: AsyncIterator[tuple[bytes, JSON | None]]
) -> AsyncIterator[tuple[bytes, bool]]:
    """NDJSON blocks for RelayResponse, ending at the done chunk (accounted) or with Ollama's error line."""
    try:
        item: tuple[bytes, JSON | None] | None = first
        while item is not None:
            block, final = item
            if final is not None:
                call.saw(max(0, block.count(b"\n") - 1))  # the token lines that came with the final one
                call.finish(final)
                yield block, True
                return
            call.saw(block.count(b"\n"))
            yield block, False
            item = await anext(relay, None)
        raise BadBackendResponse("the backend stream ended before a done=true chunk")
    except SwarmError as exc:
        call.gateway.observe_error(exc)
        yield dumps({"error": exc.message}) + b"\n", True  # after the first byte the status is already 200
    finally:
        await call.end(relay)


@router.post("/api/embed")
async def embed(request: Request) -> Response:
    async def work() -> Response:
        body = parse_body(await request.body())
        model = require_model(body)
        inputs = check_embed_input(body.get("input"))
        check_keep_alive(body.get("keep_alive"))
        call = await gateway_of(request).begin(request, "ollama", model, lambda: " ".join(inputs), 0)
        if call.routed:
            body["model"] = call.model
        result = await call.complete(request, call.backend.embed(body))
        return _json(result, call.headers())

    return await _guard(request, work)


@router.post("/api/embeddings")
async def embeddings_legacy(request: Request) -> Response:
    """Ollama's deprecated single-prompt endpoint ({"prompt"} -> {"embedding"}), served through /api/embed."""

    async def work() -> Response:
        body = parse_body(await request.body())
        model = require_model(body)
        prompt = check_embed_input(body.get("prompt"), "prompt")
        if len(prompt) != 1:
            raise BadRequest("prompt: must be a single string (use /api/embed for a batch)", "prompt")
        check_keep_alive(body.get("keep_alive"))
        call = await gateway_of(request).begin(request, "ollama", model, lambda: prompt[0], 0)
        native = {k: v for k, v in body.items() if k in ("options", "keep_alive", "truncate")}
        result = await call.complete(request, call.backend.embed({**native, "model": call.model, "input": prompt}))
        vectors = result.get("embeddings")
        if not isinstance(vectors, list) or len(vectors) != 1:
            raise BadBackendResponse("the backend's /api/embed answer has no embedding for the prompt")
        return _json({"embedding": vectors[0]}, call.headers())

    return await _guard(request, work)


# ---- catalog -------------------------------------------------------------------------------------------


AUTO_DETAILS = {"parent_model": "", "format": "router", "family": "swarm", "families": ["swarm"]}


@router.api_route("/api/tags", methods=["GET", "HEAD"], include_in_schema=False)
async def tags(request: Request) -> Response:
    async def work() -> Response:
        gateway = gateway_of(request)
        models = list(await (await gateway.backend_for(request)).installed())
        if gateway.supports_auto:
            models.append(_auto_entry())
        return _json({"models": models})

    return await _guard(request, work)


def _auto_entry() -> JSON:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(0))
    return {"name": AUTO, "model": AUTO, "modified_at": stamp, "size": 0, "digest": "", "details": AUTO_DETAILS}


@router.get("/api/ps")
async def ps(request: Request) -> Response:
    async def work() -> Response:
        backend = await gateway_of(request).backend_for(request)
        entries = [
            {"name": m.name, "model": m.name, "size": m.size, "size_vram": m.size_vram, "expires_at": m.expires_at}
            for m in await backend.loaded()
        ]
        return _json({"models": entries})

    return await _guard(request, work)


@router.post("/api/show")
async def show(request: Request) -> Response:
    async def work() -> Response:
        body = parse_body(await request.body())
        model = require_model(body, "model", "name")
        gateway = gateway_of(request)
        backend = await gateway.backend_for(request)
        if model == AUTO and gateway.supports_auto:
            return _json(_auto_show(await gateway.can_call_tools(request)))
        return _json(await backend.show(model))

    return await _guard(request, work)


def _auto_show(tools: bool) -> JSON:
    return {
        "modelfile": "# model=auto: each request is routed to a catalog model by the Ollama Swarm Router",
        "parameters": "",
        "template": "",
        "details": AUTO_DETAILS,
        "model_info": {"general.architecture": "router"},
        "capabilities": ["completion", "tools"] if tools else ["completion"],
    }


# ---- model management (admin key only) -------------------------------------------------------------------


async def manage(request: Request) -> Response:
    return await _guard(request, lambda: _manage(request, request.url.path))


for _path in MANAGE_PATHS:
    router.add_api_route(_path, manage, methods=["POST"], name=_path.rsplit("/", 1)[-1])
router.add_api_route("/api/delete", manage, methods=["DELETE"], name="delete")


async def _manage(request: Request, path: str) -> Response:
    """Relayed to the caller's backend byte for byte (status, body, content type), streamed (a pull's progress)."""
    gateway = gateway_of(request)
    backend = await gateway.admin_backend(request, path)
    raw = await request.body()
    check_relayed(raw)
    reply = await backend.manage(request.method, path, raw)
    body = reply.body
    if path in ("/api/pull", "/api/delete"):  # the installed models change: re-read them once the reply is out
        body = _then(reply.body, lambda: gateway.models_changed(backend))
    # the body is Ollama's; an upstream failure is a bad gateway for our caller, never our own 500
    status = 502 if reply.status == 500 else reply.status
    return StreamingResponse(body, status, media_type=reply.media_type, headers=STREAM_HEADERS)


async def _then(body: AsyncIterator[bytes], after: Callable[[], Awaitable[None]]) -> AsyncIterator[bytes]:
    try:
        async for block in body:
            yield block
    finally:
        await after()
