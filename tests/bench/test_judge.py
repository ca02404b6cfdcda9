"""The LLM judge records every failure instead of raising."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import pytest

from app.bench.judge import JUDGE_SCHEMA, judge, parse_verdict


@dataclass
class Reply:
    content: str


def fake(content: str) -> Any:
    seen: list[Any] = []

    async def chat(messages: list[dict[str, str]], schema: dict[str, Any]) -> Reply:
        seen.append((messages, schema))
        return Reply(content)

    chat.seen = seen  # type: ignore[attr-defined]
    return chat


@pytest.mark.anyio
async def test_fenced_json_verdict() -> None:
    chat = fake('```json\n{"score": 0.75, "rationale": "mostly right"}\n```')
    res = await judge(chat, "Add 2 and 2.", "4", expected=4)
    assert (res.score, res.rationale, res.error) == (0.75, "mostly right", None)
    messages, schema = chat.seen[0]
    assert schema == {"format": JUDGE_SCHEMA, "temperature": 0} and "REFERENCE" in messages[-1]["content"]


@pytest.mark.anyio
async def test_garbage_and_bad_scores_are_recorded() -> None:
    res = await judge(fake("I think it is fine!"), "t", "o")
    assert res.score is None and res.error == "judge reply is not JSON"
    assert (await judge(fake('{"score": "high"}'), "t", "o")).error is not None
    assert (await judge(fake('{"score": -2, "rationale": ""}'), "t", "o")).score is None
    assert (await judge(fake('{"rationale": "x"}'), "t", "o")).error == "judge JSON has no 'score'"


@pytest.mark.anyio
async def test_raising_and_hanging_chats_are_recorded() -> None:
    async def broken(messages: list[dict[str, str]], schema: dict[str, Any]) -> Reply:
        raise ConnectionError("backend down")

    async def slow(messages: list[dict[str, str]], schema: dict[str, Any]) -> Reply:
        await asyncio.sleep(10)
        return Reply("{}")

    res = await judge(broken, "t", "o")
    assert res.score is None and res.error and "ConnectionError" in res.error
    res = await judge(slow, "t", "o", timeout_s=0.05)
    assert res.score is None and res.error and "timed out" in res.error


def test_ten_point_scale_is_rescaled() -> None:
    assert parse_verdict('{"score": 8, "rationale": "ok"}').score == pytest.approx(0.8)
    assert parse_verdict('{"score": 1, "rationale": "ok"}').score == 1.0
