"""OpenAI-compatible proxy (/v1/*): chat, completions, embeddings and the Responses API relayed to the backend in
OpenAI's own format (Ollama's /v1 endpoints, or the in-process backends' translation); OpenAI's error shape."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.api.compat_check import check_embed_input, check_openai_chat, check_responses, check_text
from app.api.compat_relay import relay
from app.api.errors import openai_error
from app.api.gateway import AUTO, gateway_of
from app.api.jsonio import dumps, last_user_text, parse_body
from app.backends.base import JSON
from app.backends.openai_compat import model_of, options_of, stream_flags
from app.core.errors import BadRequest, ModelNotFound, SwarmError

router = APIRouter(prefix="/v1", tags=["openai"])


async def _guard(request: Request, work: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await work()
    except SwarmError as exc:
        gateway_of(request).observe_error(exc)
        return openai_error(exc)


def _json(body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(body), media_type="application/json", headers=headers)


async def _forward(
    request: Request, path: str, family: str, text: Callable[[JSON], str], limit_key: tuple[str, ...]
) -> Response:
    """Check the body, pick the model (model="auto"), send the body on with only `model` changed (and, for an
    OpenAI stream, `stream_options.include_usage` so the tokens can be charged; that extra chunk is dropped)."""
    raw = await request.body()
    body = parse_body(raw)
    model = model_of(body)
    if path == "/v1/responses":
        stream = check_responses(body)
        drop = False
    else:
        if path == "/v1/chat/completions":
            check_openai_chat(body)
            raw = _max_tokens_too(raw, body)
        elif path == "/v1/completions":
            check_text(_prompt_text(body), "prompt")
            options_of(body)
        stream, include_usage = stream_flags(body)
        drop = stream and not include_usage and path != "/v1/embeddings"
    # the output limit (reserved against the tenant's budget): an embedding generates no tokens
    limit = 0 if path == "/v1/embeddings" else next((body[k] for k in limit_key if body.get(k) is not None), None)
    gateway = gateway_of(request)
    call = await gateway.begin(request, "openai", model, lambda: text(body), limit, tools=bool(body.get("tools")))
    if call.routed:
        body["model"] = call.model
    if drop:
        body["stream_options"] = {**(body.get("stream_options") or {}), "include_usage": True}
    if call.routed or drop:
        raw = dumps(body)
    return await relay(request, call, path, raw, family, stream=stream, drop_usage=drop)


def _max_tokens_too(raw: bytes, body: JSON) -> bytes:
    """Ollama's /v1 reads only `max_tokens` (as num_predict), never `max_completion_tokens`: a request that sets
    only the latter gets `max_tokens` too, appended to the body with every other byte kept, so the model stops
    where the client asked (and the call's reservation holds)."""
    limit = body.get("max_completion_tokens")
    if body.get("max_tokens") is not None or not isinstance(limit, int) or isinstance(limit, bool):
        return raw
    if "max_tokens" in body:  # an explicit null: replaced (a duplicate key would leave the reading to the parser)
        body["max_tokens"] = limit
        return dumps(body)
    body["max_tokens"] = limit
    text = raw.rstrip()
    return text[:-1] + b',"max_tokens":' + str(limit).encode() + b"}"


def _responses_text(body: JSON) -> str:
    raw = body.get("input")
    if isinstance(raw, str):
        return raw
    messages = [
        {"role": m.get("role"), "content": m.get("content")} for m in raw or [] if isinstance(m, dict) and "role" in m
    ]
    for m in messages:
        if isinstance(m["content"], list):
            m["content"] = [{"text": p.get("text", "")} for p in m["content"] if isinstance(p, dict)]
    return last_user_text(messages)


def _prompt_text(body: JSON) -> Any:
    """The prompt as one string (a list of strings joined); anything else as given, for check_text to refuse."""
    prompt = body.get("prompt")
    if isinstance(prompt, list) and prompt and all(isinstance(p, str) for p in prompt):
        return " ".join(prompt)
    return prompt


def _embed_text(body: JSON) -> str:
    return " ".join(check_embed_input(body.get("input")))


# ---- endpoints ---------------------------------------------------------------------------------------------


@router.post("/chat/completions")
async def chat_completions(request: Request) -> Response:
    work = _forward(
        request,
        "/v1/chat/completions",
        "openai",
        lambda b: last_user_text(b.get("messages")),
        ("max_tokens", "max_completion_tokens"),  # the limit Ollama honours (max_tokens; see _max_tokens_too)
    )
    return await _guard(request, lambda: work)


@router.post("/completions")
async def completions(request: Request) -> Response:
    return await _guard(request, lambda: _forward(request, "/v1/completions", "openai", _prompt_text, ("max_tokens",)))


@router.post("/embeddings")
async def embeddings(request: Request) -> Response:
    async def work() -> Response:
        body = parse_body(await request.body())
        check_embed_input(body.get("input"))
        if body.get("encoding_format", "float") not in ("float", "base64"):
            raise BadRequest("encoding_format: must be 'float' or 'base64'", "encoding_format")
        return await _forward(request, "/v1/embeddings", "openai", _embed_text, ())

    return await _guard(request, work)


@router.post("/responses")
async def responses(request: Request) -> Response:
    """OpenAI's Responses API, stateless (the whole conversation in `input`), streamed or not."""
    return await _guard(
        request, lambda: _forward(request, "/v1/responses", "responses", _responses_text, ("max_output_tokens",))
    )


@router.get("/models")
async def list_models(request: Request) -> Response:
    return await _guard(request, lambda: _models(request, None))


@router.get("/models/{model:path}")
async def retrieve_model(request: Request, model: str) -> Response:
    return await _guard(request, lambda: _models(request, model))


async def _models(request: Request, wanted: str | None) -> Response:
    gateway = gateway_of(request)
    entries = await (await gateway.backend_for(request)).installed()
    data = [
        {"id": str(e.get("name") or e.get("model")), "object": "model", "created": _epoch(e), "owned_by": "library"}
        for e in entries
    ]
    if gateway.supports_auto:
        data.append({"id": AUTO, "object": "model", "created": 0, "owned_by": "swarm-router"})
    if wanted is None:
        return _json({"object": "list", "data": data})
    for item in data:
        if wanted in (item["id"], f"{item['id']}:latest", str(item["id"]).removesuffix(":latest")):
            return _json({**item, "id": wanted})
    raise ModelNotFound(wanted, f"The model '{wanted}' does not exist")


def _epoch(entry: JSON) -> int:
    stamp = str(entry.get("modified_at") or "")
    try:
        return int(datetime.fromisoformat(stamp).timestamp())
    except ValueError:
        return 0
