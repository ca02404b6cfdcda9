"""Relaying OpenAI-, Responses- and Anthropic-format calls: the backend's answer goes to the client as it comes
(Backend.relay_compat), while the usage it reports is read on the way for accounting (Call.finish)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import Response

from app.api.disconnect import close_stream, until_disconnect
from app.api.gateway import Call
from app.api.relay import RelayResponse
from app.api.usage_counts import with_counts
from app.backends.base import JSON
from app.backends.compat import error_event
from app.backends.upstream_limits import SSE_SEPARATORS, LineSplitter, UpstreamLimits, is_count, too_big
from app.core.errors import BadBackendResponse, SwarmError, Unsupported

STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
Family = str  # "openai" | "responses" | "anthropic": where each API reports usage
DEFAULT_LIMITS = UpstreamLimits()
USAGE = b'"usage"'  # every API's usage object sits under this key; events without it need no parsing


def _count(value: Any) -> int | None:
    """A token count the upstream reported; None for anything but a count (missing, or hostile data: the call is
    then charged by counting, usage_counts.with_counts)."""
    return int(value) if is_count(value) else None


def _native(prompt: Any, completion: Any) -> JSON:
    return {"prompt_eval_count": _count(prompt), "eval_count": _count(completion)}


def _reported(usage: dict[str, Any], prompt_key: str, completion_key: str) -> JSON:
    """The counts a usage object carries, native-named; a field it has but that is no count is None."""
    names = ((prompt_key, "prompt_eval_count"), (completion_key, "eval_count"))
    return {name: _count(usage[key]) for key, name in names if key in usage}


def usage_of(family: Family, obj: Any) -> JSON | None:
    """Native-shaped token counts from one whole answer (or one streamed event), None when it carries none."""
    if not isinstance(obj, dict):
        return None
    if family in ("responses", "anthropic"):
        key = "response" if family == "responses" else "message"
        inner = obj.get(key)
        usage = (inner if isinstance(inner, dict) else obj).get("usage")
        return _reported(usage, "input_tokens", "output_tokens") if isinstance(usage, dict) else None
    usage = obj.get("usage")
    return _reported(usage, "prompt_tokens", "completion_tokens") if isinstance(usage, dict) else None


class SseMeter:
    """Reads usage off an SSE stream without changing a byte of it, except (drop_usage) the usage-only chunk
    the router asked for on the client's behalf. Events are split in linear time; an event over `max_event`
    bytes raises BadBackendResponse (SWARM_UPSTREAM_MAX_LINE_BYTES)."""

    def __init__(
        self, family: Family, drop_usage: bool = False, *, max_event: int = DEFAULT_LIMITS.max_line_bytes, url: str = ""
    ) -> None:
        self.family = family
        self.drop_usage = drop_usage
        self.usage: JSON = _native(None, None)
        self._events = LineSplitter(url or "the backend", max_event, what="an SSE event", seps=SSE_SEPARATORS)

    def feed(self, piece: bytes) -> bytes:
        events = self._events.feed(piece)
        if USAGE not in events:  # (b"" too) no event here reports usage: relayed as is, nothing parsed or copied
            return events
        return b"".join(self._event(e) if USAGE in e else e for e in self._events.split(events))

    def flush(self) -> bytes:
        return self._events.take_pending()

    def _event(self, event: bytes) -> bytes:
        for line in event.splitlines():
            if not line.startswith(b"data:") or USAGE not in line:
                continue
            try:
                obj = json.loads(line[5:])
            except (ValueError, RecursionError):
                continue
            self._count(obj)
            if self.drop_usage and isinstance(obj, dict) and obj.get("choices") == [] and "usage" in obj:
                return b""
        return event

    def _count(self, obj: Any) -> None:
        found = usage_of(self.family, obj)
        if found is None:
            return
        # Anthropic splits input (message_start) and output (message_delta): a later 0 keeps the earlier count; a
        # field that is no count (None) voids it, so the call is charged by counting
        for key, value in found.items():
            if value != 0 or self.family != "anthropic":
                self.usage[key] = value


async def relay(
    request: Request,
    call: Call,
    path: str,
    body: bytes,
    family: Family,
    *,
    stream: bool,
    drop_usage: bool = False,
) -> Response:
    """Send the call on, relay the answer: an error status or a whole answer as one body, a stream as it comes."""
    reply = await call.relay(request, path, body)
    limits, base = call.gateway.limits, getattr(call.backend, "base_url", None)
    url = f"{base}{path}" if isinstance(base, str) else f"the backend's {path}"
    # a stream request answered with one JSON document (not SSE) is a whole answer, checked like one
    if reply.status >= 400 or not stream or "json" in (reply.media_type or ""):
        data = await _read(request, call, reply.body, limits.max_response_bytes, url)
        if reply.status == 404 and "json" not in (reply.media_type or ""):
            # An older Ollama without this endpoint answers with its router's plain-text 404.
            raise Unsupported(f"the upstream Ollama does not serve {path}: update Ollama (see the README)")
        if reply.status < 400:
            answer = _answer(data, url)
            call.finish(with_counts(usage_of(family, answer) or _native(None, None), answer=answer))
        else:
            call.gateway.observe_error(f"upstream_{reply.status}")
        # an upstream failure is a bad gateway for our caller, never our own 500
        status = reply.status if reply.status < 500 else 502
        return Response(data, status, headers=call.headers(), media_type=reply.media_type)
    first = await call.first(request, reply.body)
    meter = SseMeter(family, drop_usage, max_event=limits.max_line_bytes, url=url)
    headers = {**call.headers(), **STREAM_HEADERS}
    blocks = _blocks(call, meter, first, reply.body, path)
    return RelayResponse(blocks, headers, reply.media_type or "text/event-stream", lambda: call.end(reply.body))


def _answer(data: bytes, url: str) -> JSON:
    """A whole 2xx answer must be one JSON object (a bad gateway otherwise, never relayed as a success)."""
    try:
        answer = json.loads(data)
    except RecursionError:
        raise BadBackendResponse(f"JSON from {url} is nested too deeply") from None
    except ValueError as exc:
        raise BadBackendResponse(f"invalid JSON from {url}: {data[:200]!r}") from exc
    if not isinstance(answer, dict):
        raise BadBackendResponse(f"expected a JSON object from {url}, got {type(answer).__name__}")
    return answer


async def _read(request: Request, call: Call, body: AsyncIterator[bytes], limit: int, url: str) -> bytes:
    """A whole answer, refused (BadBackendResponse: a 502 in the caller's shape) once it grows past `limit`."""
    parts: list[bytes] = []
    size = 0
    try:
        while (piece := await until_disconnect(request, call.upstream(anext(body, None)))) is not None:
            size += len(piece)
            if size > limit:
                raise too_big(url, "the answer", limit)
            parts.append(piece)
    finally:
        try:
            await close_stream(body)
        finally:
            call.release()  # no await between this and the caller's charge (finish)
    return b"".join(parts)


async def _blocks(
    call: Call, meter: SseMeter, first: bytes, body: AsyncIterator[bytes], path: str
) -> AsyncIterator[tuple[bytes, bool]]:
    try:
        piece: bytes | None = first
        while piece is not None:
            if out := meter.feed(piece):
                call.saw(out.count(b"data:"))  # a cut stream is charged the events relayed
                yield out, False
            piece = await anext(body, None)
        if rest := meter.flush():
            yield rest, False
        call.finish(meter.usage)
    except SwarmError as exc:
        call.gateway.observe_error(exc)
        yield meter.flush() + error_event(path, exc), True
    finally:
        await call.end(body)  # charged, and the model's slot free, whichever way the stream ended
