"""Prompt assembly: each child sees its parents' outputs; the synthesiser sees every subtask's result."""

from __future__ import annotations

from app.domain.models import Subtask

SYSTEM = {
    "code": "You are a careful programmer. Answer with working Python code in one ```python block.",
    "math": "You solve math problems. Show brief working, then end with 'Answer: <number>'.",
    "extraction": "You extract information. Answer with JSON only.",
    "summarize": "You write concise, faithful summaries.",
    "reasoning": "You reason step by step and give a clear final answer.",
    "creative": "You write vivid, original text.",
}
PARENT_CHARS = 4000  # a parent's output is cut here so a chain cannot blow the child's context


def subtask_messages(sub: Subtask, parent_outputs: list[tuple[Subtask, str]]) -> list[dict[str, str]]:
    parts = [sub.description]
    if parent_outputs:
        parts.append("\nResults of the earlier steps you build on:")
        for parent, output in parent_outputs:
            parts.append(f"--- {parent.id} ({parent.task_type}) ---\n{output[:PARENT_CHARS]}")
    return [
        {"role": "system", "content": SYSTEM.get(sub.task_type, SYSTEM["reasoning"])},
        {"role": "user", "content": "\n".join(parts)},
    ]


def synthesis_messages(query: str, results: list[tuple[Subtask, str]]) -> list[dict[str, str]]:
    body = "\n\n".join(f"[{s.id} - {s.task_type}] {s.description}\n{out[:PARENT_CHARS]}" for s, out in results)
    return [
        {"role": "system", "content": "Combine the partial results into one complete answer to the request."},
        {"role": "user", "content": f"Request: {query}\n\nPartial results:\n{body}\n\nFinal answer:"},
    ]
