"""Decomposer: schema request, robust parsing (fences, prose), validation, and the labelled heuristic fallback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from app.backends.sim import SimBackend
from app.execution.decomposer import SCHEMA, classify, decompose
from app.execution.llm import bind_chat
from app.routing import ChatReply, load_agents

HEAVY = Path(__file__).resolve().parents[2] / "configs" / "agents_heavy.json"

pytestmark = pytest.mark.anyio
GOOD = {
    "subtasks": [
        {"id": "s0", "task_type": "extraction", "description": "Pull the numbers", "deps": []},
        {
            "id": "s1",
            "task_type": "math",
            "description": "Add them",
            "deps": ["s0"],
            "estimated_tokens": 99999,
            "difficulty": 7,
        },
    ]
}


def fake(*replies: str | Exception) -> Any:
    calls: list[dict[str, Any]] = []

    async def chat(messages: list[dict[str, str]], options: dict[str, Any]) -> ChatReply:
        calls.append(options)
        reply = replies[min(len(calls) - 1, len(replies) - 1)]
        if isinstance(reply, Exception):
            raise reply
        return ChatReply(reply)

    chat.calls = calls  # type: ignore[attr-defined]
    return chat


async def test_fenced_json_with_prose_parses_and_clamps() -> None:
    chat = fake("Sure! Here is the plan:\n```json\n" + json.dumps(GOOD) + "\n```\nHope this helps.")
    result = await decompose("add the numbers in: 3 and 4", chat)
    assert result.plan_source == "decomposer" and result.reason is None
    assert [s.id for s in result.subtasks] == ["s0", "s1"]
    assert result.subtasks[1].deps == ["s0"]
    assert result.subtasks[1].estimated_tokens == 4096 and result.subtasks[1].difficulty == 1.0
    assert chat.calls[0]["format"] == SCHEMA


@pytest.mark.parametrize(
    ("reply", "why"),
    [
        ("no json at all", "unusable"),
        (json.dumps({"subtasks": [{"id": "a", "task_type": "dance", "description": "x", "deps": []}]}), "unusable"),
        (json.dumps({"subtasks": "do it all"}), "no 'subtasks' list"),
        (RuntimeError("backend down"), "call failed"),
    ],
)
async def test_unusable_output_falls_back_to_heuristic(reply: str | Exception, why: str) -> None:
    result = await decompose("Write a Python function that reverses a list", fake(reply))
    assert result.plan_source == "heuristic" and why in (result.reason or "")
    assert len(result.subtasks) == 1 and result.subtasks[0].task_type == "code"


def test_keyword_classification() -> None:
    assert classify("Summarize this article") == "summarize"
    assert classify("Extract the fields as JSON") == "extraction"
    assert classify("Solve the equation for x") == "math"
    assert classify("Write a haiku about rain") == "creative"
    assert classify("Why is the sky blue?") == "reasoning"


async def test_forward_and_unknown_deps_are_dropped() -> None:
    reply = {
        "subtasks": [
            {"id": "s0", "task_type": "code", "description": "a", "deps": ["s1", "zz"]},
            {"id": "s1", "task_type": "math", "description": "b", "deps": ["s0", "s0"]},
            {"id": "s1", "task_type": "summarize", "description": "c", "deps": ["s1"]},
        ]
    }
    result = await decompose("q", fake(json.dumps(reply)))
    assert result.plan_source == "decomposer"
    assert [s.id for s in result.subtasks] == ["s0", "s1", "s2"]  # the repeated id got the next free one
    assert [s.deps for s in result.subtasks] == [[], ["s0"], ["s1"]]


async def test_simulated_decomposer_answers_within_the_schema() -> None:
    agents = load_agents(HEAVY)
    sim = SimBackend(agents, 24.0, seed=4)
    sources = [(await decompose(f"query {i}", bind_chat(sim, "gemma2:2b"))).plan_source for i in range(10)]
    assert sources.count("decomposer") >= 8, sources
