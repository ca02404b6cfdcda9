"""Agents as users run them through the router: the `ollama` package (tools, think, images, num_ctx on successive
calls) and LiteLLM and LangChain tool-calling agents (one tool round-trip each)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import ollama
import pytest

from app.main import create_app
from tests.api.conftest import Stack, router_settings, serve
from tests.api.fake_ollama import FakeOllama

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # LiteLLM must not fetch its price list

MODEL = "llama3.1:8b"
IMAGE = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="


def get_weather(city: str, days: int) -> str:
    """Forecast for a city.

    Args:
        city: the city
        days: how many days ahead (1 to 7)
    """
    return f"sunny in {city} for {days} days"


OPENAI_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Forecast for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
            "required": ["city", "days"],
        },
    },
}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeOllama, str]]:
    fake = FakeOllama()
    with serve(fake.app()) as fake_url:
        root: Path = tmp_path_factory.mktemp("agents")
        with serve(create_app(router_settings(root, ollama_base_url=fake_url))) as router_url:
            yield fake, router_url


def test_ollama_think_images_and_num_ctx_on_successive_calls(recorded: tuple[FakeOllama, str]) -> None:
    fake, router_url = recorded
    final = {
        "model": MODEL,
        "created_at": "2025-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": "a cat", "thinking": "looking at the image"},
        "done": True,
        "done_reason": "stop",
        "eval_count": 2,
    }
    fake.script("/api/chat", json.dumps(final).encode())
    client = ollama.Client(host=router_url)
    for ctx in (2048, 8192, 16384):
        reply = client.chat(
            model=MODEL,
            messages=[{"role": "user", "content": "what is this?", "images": [IMAGE]}],
            think=True,
            options={"num_ctx": ctx, "temperature": 0},
        )
        got = fake.last("/api/chat").json()
        assert got["options"] == {"num_ctx": ctx, "temperature": 0}  # each call's own value reaches Ollama
        assert got["think"] is True and got["messages"][0]["images"] == [IMAGE]
        assert reply.message.thinking == "looking at the image" and reply.message.content == "a cat"


def test_ollama_tools_round_trip(live: Stack) -> None:
    client = ollama.Client(host=live.router_url)
    messages: list[object] = [{"role": "user", "content": "Weather in Oslo this week?"}]
    first = client.chat(model=MODEL, messages=messages, tools=[get_weather])  # type: ignore[arg-type]
    calls = first.message.tool_calls or []
    assert len(calls) == 1 and calls[0].function.name == "get_weather"
    args = dict(calls[0].function.arguments)
    assert isinstance(args["city"], str) and isinstance(args["days"], int)  # ollama's tool schema has no bounds
    messages += [first.message, {"role": "tool", "content": get_weather(**args), "tool_name": "get_weather"}]
    second = client.chat(model=MODEL, messages=messages, tools=[get_weather])  # type: ignore[arg-type]
    assert second.message.content and not second.message.tool_calls
    streamed = list(client.chat(model=MODEL, messages=messages[:1], tools=[get_weather], stream=True))  # type: ignore[arg-type]
    assert [c.function.name for p in streamed for c in p.message.tool_calls or []] == ["get_weather"]


def test_litellm_tool_round_trip(live: Stack) -> None:
    import litellm  # the dev extra installs it; imported here, after LITELLM_LOCAL_MODEL_COST_MAP is set

    base = {"model": f"openai/{MODEL}", "api_base": live.router_url + "/v1", "api_key": "anything"}
    messages: list[dict[str, object]] = [{"role": "user", "content": "Weather in Oslo this week?"}]
    first = litellm.completion(messages=messages, tools=[OPENAI_TOOL], **base)
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]
    result = get_weather(**json.loads(call.function.arguments))
    messages += [first.choices[0].message.model_dump(), {"role": "tool", "tool_call_id": call.id, "content": result}]
    second = litellm.completion(messages=messages, tools=[OPENAI_TOOL], **base)
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content


def test_langchain_tool_round_trip(live: Stack) -> None:
    from langchain_core.messages import HumanMessage, ToolMessage
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI

    forecast = tool(get_weather)
    llm = ChatOpenAI(model=MODEL, base_url=live.router_url + "/v1", api_key="anything", max_retries=0)
    agent = llm.bind_tools([forecast])
    history: list[object] = [HumanMessage("Weather in Oslo this week?")]
    first = agent.invoke(history)
    assert len(first.tool_calls) == 1 and first.tool_calls[0]["name"] == "get_weather"
    call = first.tool_calls[0]
    history += [first, ToolMessage(forecast.invoke(call["args"]), tool_call_id=call["id"])]
    second = agent.invoke(history)
    assert second.content and not second.tool_calls
    streamed = None
    for piece in agent.stream(history[:1]):
        streamed = piece if streamed is None else streamed + piece
    assert streamed is not None and streamed.tool_calls[0]["name"] == "get_weather"
