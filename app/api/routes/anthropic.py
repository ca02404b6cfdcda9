"""Anthropic-compatible proxy: POST /v1/messages (streamed or not, tools) and /v1/messages/count_tokens, relayed
to the backend in Anthropic's format (Ollama's /v1/messages, or the in-process translation); Anthropic's errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.api.compat_check import check_anthropic
from app.api.compat_relay import relay
from app.api.errors import anthropic_error
from app.api.gateway import gateway_of
from app.api.jsonio import dumps, parse_body, require_model
from app.backends.anthropic_compat import count_tokens
from app.backends.base import JSON
from app.core.errors import SwarmError

router = APIRouter(prefix="/v1", tags=["anthropic"])


async def _guard(request: Request, work: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await work()
    except SwarmError as exc:
        gateway_of(request).observe_error(exc)
        return anthropic_error(exc)


def last_user_text(body: JSON) -> str:
    for message in reversed(body.get("messages") or []):
        if message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):
                return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
            return str(content or "")
    return ""


@router.post("/messages")
async def messages(request: Request) -> Response:
    """Anthropic's Messages API (what coding agents use with ANTHROPIC_BASE_URL); model="auto" is routed."""

    async def work() -> Response:
        raw = await request.body()
        body = parse_body(raw)
        model = require_model(body)
        stream = check_anthropic(body)
        gateway = gateway_of(request)
        call = await gateway.begin(
            request,
            "anthropic",
            model,
            lambda: last_user_text(body),
            body.get("max_tokens"),
            tools=bool(body.get("tools")),
        )
        if call.routed:
            body["model"] = call.model
            raw = dumps(body)
        return await relay(request, call, "/v1/messages", raw, "anthropic", stream=stream)

    return await _guard(request, work)


@router.post("/messages/count_tokens")
async def messages_count_tokens(request: Request) -> Response:
    """The prompt's token count (an estimate: four characters a token); nothing is charged."""

    async def work() -> Response:
        body = parse_body(await request.body())
        model = require_model(body)
        check_anthropic(body, counting=True)
        # nothing runs on the model: no scheduler slot (it would load the model for nothing), no reservation
        call = await gateway_of(request).begin(
            request, "anthropic", model, lambda: last_user_text(body), 0, dispatch=False
        )
        return Response(
            dumps({"input_tokens": count_tokens(body)}), media_type="application/json", headers=call.headers()
        )

    return await _guard(request, work)
