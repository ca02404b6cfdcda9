"""Helper-LLM calls on a backend: the JSON-schema chat function the planner, decomposer and judge share."""

from __future__ import annotations

from typing import Any

from app.backends.base import Backend, Usage
from app.routing import ChatFn, ChatReply

Messages = list[dict[str, str]]
__all__ = ["ChatFn", "ChatReply", "bind_chat"]


def bind_chat(backend: Backend, model: str, keep_alive: str | int = "10m", num_predict: int = 512) -> ChatFn:
    """A routing.ChatFn on `backend`: options may carry "format" (a JSON schema), "model", "temperature"."""

    async def chat(messages: Messages, options: dict[str, Any]) -> ChatReply:
        name = str(options.get("model") or model)
        body = await backend.chat(
            {
                "model": name,
                "messages": messages,
                "stream": False,
                "format": options.get("format") or "json",
                "keep_alive": keep_alive,
                "options": {"temperature": options.get("temperature", 0), "num_predict": num_predict},
            }
        )
        usage = Usage.from_response(body)
        content = str((body.get("message") or {}).get("content", ""))
        return ChatReply(content, usage.prompt_tokens, usage.eval_tokens, name)

    return chat
