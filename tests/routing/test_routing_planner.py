"""Planner-LLM router with a scripted fake chat function: parsing, repair, fallback, truthful labels."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from app.domain.models import Agent, Plan, RoutingProblem, Subtask
from app.routing import ChatReply, Estimator, route, route_sync
from app.routing.planner import extract_json, plan_with_llm


class FakeChat:
    """Replays scripted replies (or raises scripted exceptions) and records every call."""

    def __init__(self, *replies: str | BaseException, delay: float = 0.0) -> None:
        self.replies = list(replies)
        self.calls: list[tuple[list[dict[str, str]], dict[str, Any]]] = []
        self.delay = delay

    async def __call__(self, messages: list[dict[str, str]], options: dict[str, Any]) -> ChatReply:
        self.calls.append((messages, options))
        if self.delay:
            await asyncio.sleep(self.delay)
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return ChatReply(content=reply, prompt_tokens=100, eval_tokens=20, model="planner:1b")


def _problem(heavy: list[Agent]) -> RoutingProblem:
    return RoutingProblem(
        subtasks=[
            Subtask(id="s0", task_type="math", difficulty=0.7),
            Subtask(id="s1", task_type="code", difficulty=0.3),
            Subtask(id="s2", task_type="summarize", deps=["s0", "s1"]),
        ],
        step_of={"s2": 1},
        agents=heavy,
        gpu_vram_gb=8.0,
        loaded=["gemma2:2b"],
    )


def _answer(**models: str) -> str:
    return json.dumps({"assignments": [{"subtask_id": k, "model": v} for k, v in models.items()]})


def _run(problem: RoutingProblem, chat: FakeChat) -> Plan:
    return asyncio.run(route(problem, Estimator(), "llm", chat=chat, planner_model="planner:1b"))


def test_fenced_json_with_prose_is_used(heavy: list[Agent]) -> None:
    reply = "Sure! Here is the plan:\n```json\n" + _answer(s0="gemma2:2b", s1="gemma2:2b", s2="llama3.1:8b")
    chat = FakeChat(reply + "\n```\nLet me know if you need more.")
    plan = _run(_problem(heavy), chat)
    assert plan.routing_source == "llm" and plan.fallback_reason is None
    assert [a.model for a in plan.assignments] == ["gemma2:2b", "gemma2:2b", "llama3.1:8b"]
    assert plan.planner is not None and plan.planner.attempts == 1 and plan.planner.prompt_tokens == 100
    messages, options = chat.calls[0]
    assert options["format"]["required"] == ["assignments"] and options["model"] == "planner:1b"
    prompt = json.loads(messages[-1]["content"])
    assert prompt["gpu_vram_gb"] == 8.0 and prompt["loaded_models"] == ["gemma2:2b"]
    assert {s["id"]: s["step"] for s in prompt["subtasks"]} == {"s0": 0, "s1": 0, "s2": 1}
    assert len(prompt["estimates"]) == 12 and prompt["agents"][3]["max_ctx"] == 8192


def test_vram_violation_is_repaired_and_the_repair_is_used(heavy: list[Agent]) -> None:
    bad = _answer(s0="llama3.1:8b", s1="qwen2.5-coder:7b", s2="gemma2:2b")  # 14.5 GB in step 0
    good = _answer(s0="qwen2.5-coder:7b", s1="qwen2.5-coder:7b", s2="gemma2:2b")
    chat = FakeChat(bad, f"Fixed: {good}")
    plan = _run(_problem(heavy), chat)
    assert plan.routing_source == "llm_repaired"
    assert [a.model for a in plan.assignments] == ["qwen2.5-coder:7b", "qwen2.5-coder:7b", "gemma2:2b"]
    assert plan.vram_violation_gb == 0.0
    repair_prompt = chat.calls[1][0][-1]["content"]
    assert "step 0 uses qwen2.5-coder:7b (6.5 GB) + llama3.1:8b (8 GB) = 14.5 GB > gpu_vram_gb = 8 GB" in repair_prompt
    assert plan.planner is not None and plan.planner.attempts == 2 and plan.planner.eval_tokens == 40


def test_garbage_twice_falls_back_to_greedy(heavy: list[Agent]) -> None:
    problem = _problem(heavy)
    plan = _run(problem, FakeChat("I think gemma is nice", '{"assignments": [{"subtask_id": "s0"}]}'))
    assert plan.routing_source == "fallback_greedy"
    assert plan.fallback_reason is not None
    assert "no JSON object" in plan.fallback_reason and "subtask 's0'" in plan.fallback_reason
    greedy = route_sync(problem, Estimator(), "greedy")
    assert [a.model for a in plan.assignments] == [a.model for a in greedy.assignments]
    assert plan.mode == "llm" and plan.planner is not None and plan.planner.attempts == 2


def test_unknown_and_missing_entries_are_violations(heavy: list[Agent]) -> None:
    reply = _answer(s0="gpt-9", s1="gemma2:2b")
    plan = _run(_problem(heavy), FakeChat(reply, reply))
    assert plan.routing_source == "fallback_greedy"
    assert plan.fallback_reason is not None
    assert "unknown model 'gpt-9'" in plan.fallback_reason and "'s2' is missing" in plan.fallback_reason


def test_chat_exception_falls_back(heavy: list[Agent]) -> None:
    plan = _run(_problem(heavy), FakeChat(ConnectionError("planner down")))
    assert plan.routing_source == "fallback_greedy"
    assert plan.fallback_reason == "planner call failed: ConnectionError: planner down"


def test_chat_timeout_falls_back(heavy: list[Agent]) -> None:
    problem = _problem(heavy)
    chat = FakeChat(_answer(s0="gemma2:2b"), delay=1.0)
    plan = asyncio.run(plan_with_llm(problem, Estimator().estimates(problem), chat, timeout_s=0.05))
    assert plan.routing_source == "fallback_greedy"
    assert plan.fallback_reason is not None and "timed out" in plan.fallback_reason


def test_llm_mode_requires_a_chat_function(heavy: list[Agent]) -> None:
    with pytest.raises(ValueError, match="chat"):
        asyncio.run(route(_problem(heavy), Estimator(), "llm"))
    with pytest.raises(ValueError, match="chat"):
        route_sync(_problem(heavy), Estimator(), "llm")


@pytest.mark.parametrize(
    "text",
    [
        '{"assignments": []}',
        '```json\n{"assignments": []}\n```',
        '```\n{"assignments": []}\n```trailing',
        'Plan: {"assignments": []} -- done {broken',
        'noise {"a": [1, {"b": 2}]',
    ],
)
def test_extract_json_is_robust(text: str) -> None:
    value = extract_json(text)
    assert isinstance(value, dict)
