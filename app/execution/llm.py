"""Helper-LLM calls on a backend: JSON-schema chat for the planner, decomposer and judge, and plain text."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app.backends.base import Backend, Usage

Messages = list[dict[str, str]]


@dataclass
class Reply:
    """Same fields as app.routing's ChatReply, so the planner can take a backend-bound chat function."""

    content: str
    prompt_tokens: int = 0
    eval_tokens: int = 0
    model: str | None = None
    latency_ms: float = 0.0


ChatFn = Callable[[Messages, dict[str, Any]], Awaitable[Reply]]


def bind_chat(backend: Backend, model: str, keep_alive: str | int = "10m", num_predict: int = 512) -> ChatFn:
    """A chat function that asks `model` on `backend` for JSON matching the schema (Ollama's `format`)."""

    async def chat(messages: Messages, schema: dict[str, Any]) -> Reply:
        started = time.perf_counter()
        body = await backend.chat(
            {
                "model": model,
                "messages": messages,
                "stream": False,
                "format": schema or "json",
                "keep_alive": keep_alive,
                "options": {"temperature": 0, "num_predict": num_predict},
            }
        )
        usage = Usage.from_response(body)
        content = str((body.get("message") or {}).get("content", ""))
        elapsed = (time.perf_counter() - started) * 1000
        return Reply(content, usage.prompt_tokens, usage.eval_tokens, model, elapsed)

    return chat


_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)


def extract_json(text: str) -> Any:
    """Parse JSON from an LLM reply: bare, fenced (```json ... ```), or embedded in prose.

    Raises ValueError when nothing parses.
    """
    candidates = [text.strip(), *(m.group(1).strip() for m in _FENCE.finditer(text))]
    for cand in candidates:
        try:
            return json.loads(cand)
        except json.JSONDecodeError:
            pass
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch in "{[":
            try:
                return decoder.raw_decode(text[i:])[0]
            except json.JSONDecodeError:
                continue
    raise ValueError("no JSON object found in reply")
