"""LLM judge: asks a chat model for {"score", "rationale"} JSON and records any failure instead of raising."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from app.bench.scoring import parse_json


class ChatReply(Protocol):
    @property
    def content(self) -> str: ...


ChatFn = Callable[[list[dict[str, str]], dict[str, Any]], Awaitable[ChatReply]]

JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"score": {"type": "number", "minimum": 0, "maximum": 1}, "rationale": {"type": "string"}},
    "required": ["score", "rationale"],
}
SYSTEM = (
    'You grade answers to tasks. Reply with JSON only: {"score": <number from 0 to 1>, "rationale": '
    "<one or two sentences>}. 1 means fully correct and complete, 0 means wrong or missing."
)


@dataclass(frozen=True)
class JudgeResult:
    score: float | None
    rationale: str
    error: str | None = None
    raw: str = ""


def build_messages(task: str, output: str, expected: Any = None) -> list[dict[str, str]]:
    parts = [f"TASK:\n{task}", f"ANSWER TO GRADE:\n{output}"]
    if expected is not None:
        ref = expected if isinstance(expected, str) else json.dumps(expected, default=str)
        parts.append(f"REFERENCE (a correct answer, for comparison):\n{ref}")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def parse_verdict(text: str) -> JudgeResult:
    """Read the judge's JSON; a 0-10 or 0-100 scale is rescaled, anything else is an error."""
    try:
        data = parse_json(text)
    except ValueError:
        return JudgeResult(None, "", "judge reply is not JSON", text)
    if not isinstance(data, dict) or "score" not in data:
        return JudgeResult(None, "", "judge JSON has no 'score'", text)
    try:
        score = float(data["score"])
    except (TypeError, ValueError):
        return JudgeResult(None, "", f"judge score {data['score']!r} is not a number", text)
    # Small models often answer on 0-10 or 0-100 despite the schema; rescale rather than discard.
    for scale in (1.0, 10.0, 100.0):
        if math.isfinite(score) and 0.0 <= score <= scale:
            return JudgeResult(score / scale, str(data.get("rationale", "")), None, text)
    return JudgeResult(None, str(data.get("rationale", "")), f"judge score {score} out of range", text)


async def judge(
    chat: ChatFn, task_description: str, output: str, expected: Any = None, *, timeout_s: float = 120.0
) -> JudgeResult:
    """Score `output` 0..1 with a rationale; errors (transport, timeout, bad JSON) land in `.error`."""
    messages = build_messages(task_description, output, expected)
    try:
        reply = await asyncio.wait_for(chat(messages, {"format": JUDGE_SCHEMA, "temperature": 0}), timeout=timeout_s)
        text = str(reply.content)
    except asyncio.CancelledError:
        raise
    except TimeoutError:
        return JudgeResult(None, "", f"judge timed out after {timeout_s:g}s")
    except Exception as exc:
        return JudgeResult(None, "", f"judge call failed: {type(exc).__name__}: {exc}")
    return parse_verdict(text)
