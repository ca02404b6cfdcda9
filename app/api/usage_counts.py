"""The token counts a call is charged when the upstream reports none (or nonsense): the chunks relayed, or the
answer's text length at four characters a token."""

from __future__ import annotations

from typing import Any

from app.backends.base import JSON
from app.backends.upstream_limits import MAX_TOKEN_COUNT, is_count

CHARS_PER_TOKEN = 4
# Keys whose values are generated text in any of the APIs (Ollama, OpenAI, Responses, Anthropic answers).
TEXT_KEYS = frozenset(
    {"content", "response", "text", "thinking", "reasoning", "reasoning_content", "arguments", "refusal"}
)


def text_chars(answer: Any) -> int:
    """Characters of generated text in a parsed answer: every string held by a text key (directly, or in a list
    under it), walked without recursion (an upstream's nesting cannot overflow the stack)."""
    total = 0
    stack: list[tuple[Any, str]] = [(answer, "")]
    while stack:
        obj, key = stack.pop()
        if isinstance(obj, str):
            total += len(obj) if key in TEXT_KEYS else 0
        elif isinstance(obj, dict):
            stack.extend((value, str(name)) for name, value in obj.items())
        elif isinstance(obj, list):
            stack.extend((item, key) for item in obj)
    return total


def with_counts(final: JSON, chunks: int = 0, answer: Any = None) -> JSON:
    """`final` with valid `prompt_eval_count` / `eval_count`: a missing or invalid prompt count is 0; a missing or
    invalid output count is the larger of the chunks relayed and the text estimate of `answer` (default: `final`
    itself). `final` is returned as is when both counts are valid."""
    prompt, output = final.get("prompt_eval_count"), final.get("eval_count")
    if is_count(prompt) and is_count(output):
        return final
    if not is_count(output):
        estimate = -(-text_chars(final if answer is None else answer) // CHARS_PER_TOKEN)
        output = min(MAX_TOKEN_COUNT, max(chunks, estimate))
    return {**final, "prompt_eval_count": prompt if is_count(prompt) else 0, "eval_count": output}
