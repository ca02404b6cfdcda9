"""Helper-LLM calls on a backend: the JSON-schema chat function the planner, decomposer and judge share."""

from __future__ import annotations

from typing import Any, Protocol

from app.backends.base import JSON, Usage
from app.routing import ChatFn, ChatReply

Messages = list[dict[str, str]]
__all__ = ["ChatFn", "ChatReply", "SupportsChat", "bind_chat"]


class SupportsChat(Protocol):
    """What a helper call needs of a backend (Backend.chat)."""

    async def chat(self, request: JSON) -> JSON: ...


def bind_chat(backend: SupportsChat, model: str, keep_alive: str | int = "10m", num_predict: int = 512) -> ChatFn:
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
