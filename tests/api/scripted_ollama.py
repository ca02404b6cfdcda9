"""A scripted fake Ollama for the hardening fault tests: each call answers with the fault a test set."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

FAULTS = ("ok", "slow_tokens", "404", "500", "invalid_json", "stall", "mid_stream_break", "huge", "hostile", "deep")
HUGE_BYTES = 3_000_000  # over the router's caps in the fault tests


class MidStreamBreak(Exception):
    """Raised inside a streaming body: uvicorn drops the connection with the chunked body unfinished."""


def _final(body: dict[str, Any], **over: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"model": body.get("model", "m"), "created_at": "2026-01-01T00:00:00Z", "done": True}
    out |= {"done_reason": "stop", "prompt_eval_count": 3, "eval_count": 2, "total_duration": 1000}
    if "messages" in body:
        out["message"] = {"role": "assistant", "content": ""}
    else:
        out["response"] = ""
    return out | over


def _token(body: dict[str, Any], text: str) -> dict[str, Any]:
    out: dict[str, Any] = {"model": body.get("model", "m"), "created_at": "2026-01-01T00:00:00Z", "done": False}
    if "messages" in body:
        out["message"] = {"role": "assistant", "content": text}
    else:
        out["response"] = text
    return out


class FakeOllama:
    def __init__(self) -> None:
        self.fault = "ok"
        self.calls = 0
        self.stall_s = 30.0
        self.loaded: set[str] = set()  # what /api/ps lists: every model called once (the router's scheduler reads it)

    def app(self) -> Starlette:
        routes = [
            Route("/api/chat", self.infer, methods=["POST"]),
            Route("/api/generate", self.infer, methods=["POST"]),
            Route("/api/embed", self.embed, methods=["POST"]),
            Route("/v1/chat/completions", self.openai_chat, methods=["POST"]),
            Route("/api/ps", self.ps, methods=["GET"]),
            Route("/api/tags", self.tags, methods=["GET"]),
            Route("/api/version", self.version, methods=["GET"]),
        ]
        return Starlette(routes=routes)

    async def _common(self) -> Response | None:
        self.calls += 1
        if self.fault == "404":
            return PlainTextResponse("404 page not found", 404)
        if self.fault == "500":
            return JSONResponse({"error": "CUDA out of memory"}, 500)
        if self.fault == "invalid_json":
            return PlainTextResponse("{not json", 200, media_type="application/json")
        if self.fault == "deep":
            return PlainTextResponse("[" * 100_000 + "]" * 100_000, 200, media_type="application/json")
        if self.fault == "huge":
            return PlainTextResponse('{"pad":"' + "x" * HUGE_BYTES + '"}', 200, media_type="application/json")
        if self.fault == "stall":
            await asyncio.sleep(self.stall_s)
        return None

    async def infer(self, request: Request) -> Response:
        body = json.loads(await request.body())
        self.loaded.add(str(body.get("model", "m")))
        if self.fault not in ("mid_stream_break", "huge", "hostile", "deep") or body.get("stream") is False:
            early = await self._common()
            if early is not None:
                return early
        if self.fault == "hostile":
            final = _final(body, eval_count="lots", prompt_eval_count={"x": 1}, total_duration=[1])
        else:
            final = _final(body)
        if body.get("stream") is False:
            return JSONResponse(final)
        return StreamingResponse(self._lines(body, final), media_type="application/x-ndjson")

    async def _lines(self, body: dict[str, Any], final: dict[str, Any]) -> AsyncIterator[bytes]:
        if self.fault == "slow_tokens":  # a long answer, one token every 50 ms
            for i in range(200):
                yield (json.dumps(_token(body, f"t{i} ")) + "\n").encode()
                await asyncio.sleep(0.05)
        for word in ("hello", " world"):
            yield (json.dumps(_token(body, word)) + "\n").encode()
        if self.fault == "mid_stream_break":
            raise MidStreamBreak("connection dropped")
        if self.fault == "huge":  # one line without a newline, far beyond the cap
            piece = b"x" * 65536
            for _ in range(HUGE_BYTES // len(piece) + 1):
                yield piece
            return
        if self.fault == "deep":
            yield b"[" * 100_000 + b"]" * 100_000 + b"\n"
            return
        yield (json.dumps(final) + "\n").encode()

    async def openai_chat(self, request: Request) -> Response:
        """Ollama's own OpenAI-compatible endpoint (the router relays /v1 to it), with the same faults."""
        body = json.loads(await request.body())
        self.loaded.add(str(body.get("model", "m")))
        usage: Any = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
        if self.fault == "hostile":
            usage = {"prompt_tokens": "lots", "completion_tokens": [1]}
        if not body.get("stream"):
            early = await self._common()
            if early is not None:
                return early
            msg = {"role": "assistant", "content": "hello world"}
            choice = {"index": 0, "message": msg, "finish_reason": "stop"}
            return JSONResponse({"id": "c", "object": "chat.completion", "choices": [choice], "usage": usage})
        if self.fault in ("404", "500", "invalid_json", "stall"):
            early = await self._common()
            if early is not None:
                return early
        return StreamingResponse(self._events(usage), media_type="text/event-stream")

    async def _events(self, usage: Any) -> AsyncIterator[bytes]:
        def event(obj: Any) -> bytes:
            return b"data: " + json.dumps(obj).encode() + b"\n\n"

        count = 200 if self.fault == "slow_tokens" else 2
        for i in range(count):
            yield event(
                {
                    "id": "c",
                    "object": "chat.completion.chunk",
                    "choices": [{"index": 0, "delta": {"content": f"t{i} "}}],
                }
            )
            if self.fault == "slow_tokens":
                await asyncio.sleep(0.05)
        if self.fault == "mid_stream_break":
            raise MidStreamBreak("connection dropped")
        if self.fault == "huge":
            for _ in range(HUGE_BYTES // 65536 + 1):
                yield b"x" * 65536
            return
        yield event({"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": usage})
        yield b"data: [DONE]\n\n"

    async def embed(self, request: Request) -> Response:
        early = await self._common()
        if early is not None:
            return early
        if self.fault == "hostile":
            return JSONResponse({"model": "m", "embeddings": "lots", "prompt_eval_count": "many"})
        return JSONResponse({"model": "m", "embeddings": [[0.6, 0.8]], "prompt_eval_count": 1})

    async def ps(self, request: Request) -> Response:
        if self.fault == "hostile_ps":
            return JSONResponse({"models": [{"name": "gemma2:2b", "size": "lots", "size_vram": None}]})
        return JSONResponse({"models": [{"name": m, "model": m, "size": 1_600_000_000} for m in sorted(self.loaded)]})

    async def tags(self, request: Request) -> Response:
        early = await self._common()
        if early is not None:
            return early
        if self.fault == "hostile":
            return JSONResponse({"models": [{"name": 5, "size": "lots", "details": "x"}]})
        return JSONResponse({"models": [{"name": "gemma2:2b", "model": "gemma2:2b", "size": 1}]})

    async def version(self, request: Request) -> Response:
        return JSONResponse({"version": "0.0.0-fake"})
