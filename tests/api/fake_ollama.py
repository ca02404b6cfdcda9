"""A recording fake Ollama for the pass-through tests: answers every path with a scripted reply (raw bytes) and keeps
what it received (path, headers, body bytes)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeOllama:
    """replies: path -> (status, content type, body bytes). Unscripted paths answer like an idle Ollama."""

    replies: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    broken: set[str] = field(default_factory=set)  # paths whose answer breaks off after its scripted bytes

    def script(self, path: str, body: bytes, media_type: str = "application/json", status: int = 200) -> None:
        self.replies[path] = (status, media_type, body)

    def last(self, path: str) -> Received:
        return [r for r in self.received if r.path == path][-1]

    def app(self) -> Starlette:
        async def handle(request: Request) -> Response:
            body = await request.body()
            self.received.append(Received(request.url.path, dict(request.headers), body))
            if request.url.path in self.replies:
                status, media_type, data = self.replies[request.url.path]
                if request.url.path in self.broken:
                    return StreamingResponse(_break_after(data), status, media_type=media_type)
                return Response(data, status, media_type=media_type)
            return Response(json.dumps(IDLE.get(request.url.path, {})), media_type="application/json")

        return Starlette(routes=[Route("/{path:path}", handle, methods=["GET", "POST", "DELETE", "HEAD"])])


async def _break_after(data: bytes) -> AsyncIterator[bytes]:
    yield data
    raise ConnectionResetError("the fake Ollama breaks off mid-stream")


TAGS = [
    {"name": n, "model": n, "size": 2_000_000_000, "modified_at": "2025-01-01T00:00:00Z", "details": {}}
    for n in ("gemma2:2b", "qwen2.5-coder:7b", "llama3.1:8b", "phi4:14b")
]
IDLE: dict[str, Any] = {"/api/version": {"version": "0.13.5"}, "/api/ps": {"models": []}, "/api/tags": {"models": TAGS}}
