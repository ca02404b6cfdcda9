"""Validation without loss: unknown roles, malformed tool calls in the history and bad tool_choice values are 400s
naming the field, in each API's own error shape; valid tool conversations go through."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import Stack

MODEL = "llama3.1:8b"
TOOL = {"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {}}}}
USER = {"role": "user", "content": "hi"}


def _call(arguments: object, name: object = "f") -> dict[str, object]:
    return {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "c", "type": "function", "function": {"name": name, "arguments": arguments}}],
    }


OPENAI_BAD = [
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [USER, {"role": "assistant", "tool_calls": {"id": "c"}}]}, "messages[1].tool_calls"),
    ({"messages": [USER, _call("{}", name="")]}, "messages[1].tool_calls[0].function.name"),
    ({"messages": [USER, _call("{not json")]}, "messages[1].tool_calls[0].function.arguments"),
    ({"messages": [USER, _call({"a": 1})]}, "messages[1].tool_calls[0].function.arguments"),
    ({"messages": [USER], "tools": [TOOL], "tool_choice": "always"}, "tool_choice"),
    ({"messages": [USER], "tool_choice": "required"}, "tool_choice"),
    (
        {"messages": [USER], "tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "g"}}},
        "tool_choice",
    ),
    ({"messages": [USER], "tools": [TOOL], "tool_choice": {"type": "function"}}, "tool_choice"),
    ({"messages": [USER], "reasoning_effort": "extreme"}, "reasoning_effort"),
]


@pytest.mark.parametrize(("body", "param"), OPENAI_BAD, ids=[p for _, p in OPENAI_BAD])
def test_openai_chat_rejects_naming_the_field(live: Stack, body: dict[str, object], param: str) -> None:
    resp = httpx.post(live.router_url + "/v1/chat/completions", json={"model": MODEL, **body})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["param"] == param and error["message"].startswith(param) and error["type"] == "invalid_request_error"


def test_a_valid_tool_conversation_goes_through(live: Stack) -> None:
    history = [USER, _call('{"x": 1}'), {"role": "tool", "tool_call_id": "c", "content": "42"}]
    body = {
        "model": MODEL,
        "messages": history,
        "tools": [TOOL],
        "tool_choice": {"type": "function", "function": {"name": "f"}},
    }
    resp = httpx.post(live.router_url + "/v1/chat/completions", json={**body, "x_unknown_field": {"kept": 1}})
    assert resp.status_code == 200 and resp.json()["choices"][0]["finish_reason"] == "stop"  # the tool answered


NATIVE_BAD = [
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
    (
        {
            "messages": [
                USER,
                {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]},
            ]
        },
        "messages[1].tool_calls[0].function.arguments",
    ),
    (
        {"messages": [USER, {"role": "assistant", "content": "", "tool_calls": [{"function": {}}]}]},
        "messages[1].tool_calls[0].function.name",
    ),
]


@pytest.mark.parametrize(("body", "field"), NATIVE_BAD, ids=[f for _, f in NATIVE_BAD])
def test_native_chat_rejects_naming_the_field(live: Stack, body: dict[str, object], field: str) -> None:
    resp = httpx.post(live.router_url + "/api/chat", json={"model": MODEL, "stream": False, **body})
    assert resp.status_code == 400 and resp.json()["error"].startswith(field)


RESPONSES_BAD = [
    ({"input": [{"role": "wizard", "content": "hi"}]}, "input[0].role"),
    ({"input": "hi", "tools": [{"type": "function", "name": "f"}], "tool_choice": "sometimes"}, "tool_choice"),
    (
        {"input": "hi", "tools": [{"type": "function", "name": "f"}], "tool_choice": {"type": "function", "name": "g"}},
        "tool_choice",
    ),
    ({"input": "hi", "stream": "yes"}, "stream"),
]


@pytest.mark.parametrize(("body", "param"), RESPONSES_BAD, ids=[p for _, p in RESPONSES_BAD])
def test_responses_rejects_naming_the_field(live: Stack, body: dict[str, object], param: str) -> None:
    resp = httpx.post(live.router_url + "/v1/responses", json={"model": MODEL, **body})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == param


ANTHROPIC_BAD = [
    ({"messages": [{"role": "system", "content": "hi"}]}, "messages[0].role"),
    ({"messages": [USER], "tool_choice": {"type": "sometimes"}}, "tool_choice.type"),
    (
        {
            "messages": [USER],
            "tools": [{"name": "f", "input_schema": {}}],
            "tool_choice": {"type": "tool", "name": "g"},
        },
        "tool_choice.name",
    ),
    ({"messages": []}, "messages"),
]


@pytest.mark.parametrize(("body", "field"), ANTHROPIC_BAD, ids=[f for _, f in ANTHROPIC_BAD])
def test_anthropic_rejects_naming_the_field(live: Stack, body: dict[str, object], field: str) -> None:
    resp = httpx.post(live.router_url + "/v1/messages", json={"model": MODEL, "max_tokens": 10, **body})
    assert resp.status_code == 400
    assert resp.json()["type"] == "error" and resp.json()["error"]["message"].startswith(field)


VALID_CHOICES = [
    {"tool_choice": "auto"},
    {
        "tool_choice": {
            "type": "allowed_tools",
            "allowed_tools": {"mode": "auto", "tools": [{"type": "function", "function": {"name": "f"}}]},
        }
    },
    {"tool_choice": "required", "reasoning_effort": "xhigh"},
    {"tool_choice": "required", "reasoning": {"effort": "minimal"}, "parallel_tool_calls": False},
]


@pytest.mark.parametrize("extra", VALID_CHOICES)
def test_valid_choices_the_router_does_not_model_pass(live: Stack, extra: dict[str, object]) -> None:
    resp = httpx.post(
        live.router_url + "/v1/chat/completions", json={"model": MODEL, "messages": [USER], "tools": [TOOL], **extra}
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("prompt", [[1, 2, 3], None, {"text": "hi"}, []])
def test_completions_prompt_must_be_text(live: Stack, prompt: object) -> None:
    resp = httpx.post(live.router_url + "/v1/completions", json={"model": MODEL, "prompt": prompt})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "prompt"
