"""Pairwise LLM judging with the positions swapped: which of two answers is better, ties kept as ties."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Literal

from app.bench.judge import ChatFn
from app.bench.scoring import parse_json

Winner = Literal["A", "B", "tie"]
Outcome = Literal["first", "second", "tie"]
PAIR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"winner": {"type": "string", "enum": ["A", "B", "tie"]}, "rationale": {"type": "string"}},
    "required": ["winner", "rationale"],
}
SYSTEM = (
    "You compare two assistants' answers to the same user request. Judge correctness, helpfulness and clarity; "
    "ignore length and the order the answers appear in. Reply with JSON only: "
    '{"winner": "A" | "B" | "tie", "rationale": <one sentence>}.'
)


@dataclass(frozen=True)
class PairVerdict:
    winner: Winner | None
    rationale: str = ""
    error: str | None = None


@dataclass(frozen=True)
class SwappedVerdict:
    """`outcome` names the better of (first, second) when both orders agree; disagreement is a tie (position bias
    cancelled); None when a call failed."""

    outcome: Outcome | None
    forward: PairVerdict
    backward: PairVerdict


def pair_messages(question: str, answer_a: str, answer_b: str, reference: str | None = None) -> list[dict[str, str]]:
    parts = [f"USER REQUEST:\n{question}", f"ANSWER A:\n{answer_a}", f"ANSWER B:\n{answer_b}"]
    if reference:
        parts.append(f"REFERENCE ANSWER (for comparison):\n{reference}")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def parse_pair(text: str) -> PairVerdict:
    try:
        data = parse_json(text)
    except ValueError:
        return PairVerdict(None, error="pairwise judge reply is not JSON")
    winner = str(data.get("winner", "")).strip() if isinstance(data, dict) else ""
    normal = {"a": "A", "b": "B", "tie": "tie", "draw": "tie"}.get(winner.lower())
    if normal is None:
        return PairVerdict(None, error=f"pairwise judge winner {winner!r} is not A, B or tie")
    return PairVerdict(normal, str(data.get("rationale", "")))  # type: ignore[arg-type]


async def judge_pair(
    chat: ChatFn, question: str, answer_a: str, answer_b: str, *, reference: str | None = None, timeout_s: float = 120
) -> PairVerdict:
    try:
        reply = await asyncio.wait_for(
            chat(pair_messages(question, answer_a, answer_b, reference), {"format": PAIR_SCHEMA, "temperature": 0}),
            timeout=timeout_s,
        )
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # transport, timeout: recorded, never fatal
        return PairVerdict(None, error=f"pairwise judge call failed: {type(exc).__name__}: {exc}")
    return parse_pair(str(reply.content))


async def judge_swapped(
    chat: ChatFn, question: str, first: str, second: str, *, reference: str | None = None
) -> SwappedVerdict:
    """Ask twice, first as A then as B; keep a winner only when both orders name the same answer."""
    fwd = await judge_pair(chat, question, first, second, reference=reference)
    bwd = await judge_pair(chat, question, second, first, reference=reference)
    if fwd.winner is None or bwd.winner is None:
        return SwappedVerdict(None, fwd, bwd)
    a = {"A": "first", "B": "second", "tie": "tie"}[fwd.winner]
    b = {"A": "second", "B": "first", "tie": "tie"}[bwd.winner]
    return SwappedVerdict(a if a == b else "tie", fwd, bwd)  # type: ignore[arg-type]
