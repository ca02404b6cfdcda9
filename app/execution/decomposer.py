"""Query -> subtasks: an LLM with a JSON schema, validated, with a keyword-classified single-subtask fallback."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from app.core.errors import BudgetExceeded, DagError
from app.domain.models import MAX_ORIGINAL_DIFFICULTY, TASK_TYPES, Subtask, unit_difficulty
from app.execution.dag import TaskDAG
from app.execution.llm import ChatFn
from app.routing.planner import extract_json

MAX_SUBTASKS = 8
IDS = [f"s{i}" for i in range(MAX_SUBTASKS)]  # an enum: a grammar-constrained model cannot invent ids

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "subtasks": {
            "type": "array",
            "minItems": 1,
            "maxItems": MAX_SUBTASKS,
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "enum": IDS},
                    "task_type": {"type": "string", "enum": list(TASK_TYPES)},
                    "description": {"type": "string"},
                    "estimated_tokens": {"type": "integer"},
                    "difficulty": {"type": "number"},
                    "deps": {"type": "array", "items": {"type": "string", "enum": IDS}},
                },
                "required": ["id", "task_type", "description", "deps"],
            },
        }
    },
    "required": ["subtasks"],
}

SYSTEM = (
    "You split a user request into at most {n} subtasks for specialised models. Task types: {types}. "
    "Give each subtask a short id (s0, s1, ...), a self-contained description, an estimate of output tokens, "
    "a difficulty in [0,1] and the ids it depends on. Use one subtask when the request is simple. "
    "Answer with JSON only."
)

_KEYWORDS: list[tuple[str, tuple[str, ...]]] = [
    (
        "code",
        ("python", "function", "code", "program", "script", "bug", "implement", "class ", "sql", "regex"),
    ),
    (
        "math",
        (
            "solve",
            "integral",
            "integrate",
            "equation",
            "compute",
            "calculate",
            "sum of",
            "derivative",
            "roots",
            "probability",
            "how many",
            "+",
            "*",
            "^",
        ),
    ),
    ("extraction", ("extract", "json", "parse", "fields", "list the", "find all")),
    ("summarize", ("summarize", "summarise", "summary", "tl;dr", "condense")),
    ("creative", ("poem", "story", "haiku", "slogan", "creative", "lyrics")),
]


@dataclass
class Decomposition:
    subtasks: list[Subtask]
    plan_source: str  # "decomposer" | "heuristic"
    reason: str | None = None


def classify(text: str) -> str:
    """Keyword task-type classification; reasoning when nothing matches."""
    low = text.lower()
    best, hits = "reasoning", 0
    for task_type, words in _KEYWORDS:
        n = sum(1 for w in words if w in low)
        if n > hits:
            best, hits = task_type, n
    return best


def estimate_difficulty(text: str) -> float:
    words = len(re.findall(r"\w+", text))
    hard = sum(
        1 for w in ("prove", "optimi", "explain why", "step by step", "complex", "efficient") if w in text.lower()
    )
    return round(min(0.9, 0.25 + words / 400 + 0.15 * hard), 2)


def heuristic(query: str, reason: str | None = None) -> Decomposition:
    task_type = classify(query)
    sub = Subtask(
        id="s0",
        task_type=task_type,
        description=query,
        estimated_tokens=512 if task_type in ("code", "creative") else 256,
        difficulty=estimate_difficulty(query),
    )
    return Decomposition([sub], "heuristic", reason)


def parse(content: str, query: str) -> list[Subtask]:
    """Validate a decomposition, repairing what is unambiguous: a repeated id gets the next free one, and a
    dependency may only name an earlier subtask, so forward or unknown deps (a cycle, or dangling) are dropped."""
    items = extract_json(content).get("subtasks")
    if not isinstance(items, list) or not items:
        raise ValueError("reply has no 'subtasks' list")
    subs: list[Subtask] = []
    for raw in items[:MAX_SUBTASKS]:
        if not isinstance(raw, dict):
            raise ValueError("subtask is not an object")
        earlier = [s.id for s in subs]
        sid = str(raw.get("id") or "")
        if not sid or sid in earlier:
            sid = next(i for i in (f"s{n}" for n in range(len(earlier) + MAX_SUBTASKS)) if i not in earlier)
        deps = raw.get("deps") or []
        if not isinstance(deps, list):
            raise ValueError(f"subtask {sid!r}: deps is not a list")
        fields = {k: raw[k] for k in ("task_type", "description") if k in raw}
        subs.append(
            Subtask.model_validate(
                {
                    **fields,
                    "id": sid,
                    "description": fields.get("description") or query,
                    "deps": list(dict.fromkeys(str(d) for d in deps if str(d) in earlier)),
                    "estimated_tokens": int(min(max(int(raw.get("estimated_tokens") or 256), 16), 4096)),
                    "difficulty": _difficulty(raw.get("difficulty")),
                }
            )
        )
    TaskDAG(subs)
    return subs


async def decompose(query: str, chat: ChatFn | None) -> Decomposition:
    if chat is None:
        return heuristic(query, "no decomposer model")
    messages = [
        {"role": "system", "content": SYSTEM.format(n=MAX_SUBTASKS, types=", ".join(TASK_TYPES))},
        {"role": "user", "content": query},
    ]
    try:
        reply = await chat(messages, {"format": SCHEMA, "temperature": 0})
        return Decomposition(parse(reply.content, query), "decomposer")
    except (ValueError, ValidationError, DagError, TypeError) as exc:
        return heuristic(query, f"decomposer output unusable: {str(exc)[:200]}")
    except BudgetExceeded:  # the tenant's budget is spent: the job stops, no fallback
        raise
    except Exception as exc:  # backend failures must not kill the job: fall back and say why
        return heuristic(query, f"decomposer call failed: {type(exc).__name__}: {str(exc)[:200]}")


def _difficulty(value: Any) -> float:
    """A model's difficulty: 0..1, or the original 1..5 scale (mapped by unit_difficulty); clamped, never fatal."""
    try:
        return unit_difficulty(min(max(float(value if value is not None else 0.5), 0.0), MAX_ORIGINAL_DIFFICULTY))
    except (TypeError, ValueError):
        return 0.5
