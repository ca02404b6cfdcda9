"""Tool-using clients as users run them, against the live router (upstream: the simulated Ollama over HTTP, whose
/v1 endpoints translate): openai chat with tools (whole, `.stream()`, raw SSE), the Responses API, anthropic."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from tests.api.conftest import ADMIN_KEY, Stack, stack

MODEL = "llama3.1:8b"  # a tool-calling model of the heavy catalog
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1, "maximum": 7}},
    "required": ["city", "days"],
}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Forecast", "parameters": WEATHER}}]
ASK = [{"role": "user", "content": "What is the weather in Oslo this week?"}]


@pytest.fixture(scope="module")
def client(live: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.router_url + "/v1", api_key="anything", max_retries=0)


def _check_args(arguments: str) -> dict[str, object]:
    args = json.loads(arguments)
    assert isinstance(args["city"], str) and 1 <= args["days"] <= 7  # schema-valid (the sim samples the schema)
    return args  # type: ignore[no-any-return]


def test_chat_tool_round_trip(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, tool_choice="required")  # type: ignore[arg-type]
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert call.type == "function" and call.function.name == "get_weather" and call.id  # type: ignore[union-attr]
    _check_args(call.function.arguments)  # type: ignore[union-attr]
    history = [*ASK, choice.message.model_dump(exclude_none=True)]
    history.append({"role": "tool", "tool_call_id": call.id, "content": "sunny, 21 C"})
    second = client.chat.completions.create(model=MODEL, messages=history, tools=TOOLS)  # type: ignore[arg-type]
    assert second.choices[0].finish_reason == "stop" and second.choices[0].message.content


def test_streamed_tool_call_with_the_stream_helper(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS)  # type: ignore[arg-type]
    with client.chat.completions.stream(model=MODEL, messages=ASK, tools=TOOLS) as stream:  # type: ignore[arg-type]
        kinds = [event.type for event in stream]
        final = stream.get_final_completion()
    assert "tool_calls.function.arguments.delta" in kinds and "tool_calls.function.arguments.done" in kinds
    assert final.choices[0].finish_reason == "tool_calls"
    got = final.choices[0].message.tool_calls[0].function  # type: ignore[index]
    want = whole.choices[0].message.tool_calls[0].function  # type: ignore[index]
    assert (got.name, json.loads(got.arguments)) == (want.name, json.loads(want.arguments))  # deterministic sim


def test_streamed_tool_call_raw_sse_shape(live: Stack) -> None:
    body = {"model": MODEL, "messages": ASK, "tools": TOOLS, "stream": True}
    with httpx.stream("POST", live.router_url + "/v1/chat/completions", json=body) as resp:
        events = [line[6:] for line in resp.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    deltas = [c["choices"][0]["delta"].get("tool_calls") for c in chunks if c["choices"]]
    calls = [d[0] for d in deltas if d]
    head, fragments = calls[0], calls[1:]
    assert head["index"] == 0 and head["id"].startswith("call_") and head["type"] == "function"
    assert head["function"] == {"name": "get_weather", "arguments": ""}
    assert len(fragments) >= 2 and all(set(f) == {"index", "function"} for f in fragments)
    _check_args("".join(f["function"]["arguments"] for f in fragments))
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finishes == ["tool_calls"]
    assert all("usage" not in c for c in chunks)  # not asked for: the router's own usage chunk is dropped


def test_tool_choice_none_answers_in_text(client: openai.OpenAI) -> None:
    done = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, tool_choice="none")  # type: ignore[arg-type]
    assert done.choices[0].finish_reason == "stop" and not done.choices[0].message.tool_calls


def test_auto_with_tools_picks_a_tool_calling_model(client: openai.OpenAI) -> None:
    prompt = [{"role": "user", "content": "Prove that the sum of two even integers is even"}]
    plain = client.chat.completions.with_raw_response.create(model="auto", messages=prompt)  # type: ignore[arg-type]
    tooled = client.chat.completions.with_raw_response.create(model="auto", messages=prompt, tools=TOOLS)  # type: ignore[arg-type]
    assert plain.headers["x-swarm-routed-model"] == "phi4:14b"  # the prover, which cannot call tools
    assert tooled.headers["x-swarm-routed-model"] in ("qwen2.5-coder:7b", "llama3.1:8b")
    assert tooled.parse().choices[0].finish_reason == "tool_calls"


def test_a_model_without_tools_refuses_them_like_ollama(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.chat.completions.create(model="gemma2:2b", messages=ASK, tools=TOOLS)  # type: ignore[arg-type]
    assert "does not support tools" in str(err.value)


# ---- Responses API -------------------------------------------------------------------------------------------

RESPONSE_TOOLS = [{"type": "function", "name": "get_weather", "description": "Forecast", "parameters": WEATHER}]


def test_responses_text_whole_and_streamed(client: openai.OpenAI) -> None:
    raw = client.responses.with_raw_response.create(model="auto", input="Summarize: the cat sat on the mat.")
    done = raw.parse()
    assert raw.headers["x-swarm-routed-model"] == done.model
    assert done.status == "completed" and done.output_text and done.usage and done.usage.output_tokens > 0
    events = list(client.responses.create(model=done.model, input="Summarize: the cat sat on the mat.", stream=True))
    kinds = [e.type for e in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == done.output_text  # the sim is deterministic per (seed, model, prompt)
    assert [e.sequence_number for e in events] == list(range(len(events)))


def test_responses_cut_by_max_output_tokens_is_incomplete(client: openai.OpenAI) -> None:
    done = client.responses.create(model="gemma2:2b", input="Summarize: the cat sat on the mat.", max_output_tokens=2)
    assert done.status == "incomplete" and done.incomplete_details.reason == "max_output_tokens"  # type: ignore[union-attr]
    events = list(
        client.responses.create(
            model="gemma2:2b", input="Summarize: the cat sat on the mat.", max_output_tokens=2, stream=True
        )
    )
    assert events[-1].type == "response.incomplete" and len(events[-1].response.output_text.split()) == 2  # type: ignore[union-attr]


def test_responses_function_call_round_trip(client: openai.OpenAI) -> None:
    first = client.responses.create(model=MODEL, input="Weather in Oslo?", tools=RESPONSE_TOOLS)  # type: ignore[arg-type]
    call = next(item for item in first.output if item.type == "function_call")
    _check_args(call.arguments)
    follow = [
        {"role": "user", "content": "Weather in Oslo?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"},
    ]
    second = client.responses.create(model=MODEL, input=follow, tools=RESPONSE_TOOLS)  # type: ignore[arg-type]
    assert second.output_text and all(item.type == "message" for item in second.output)
    streamed = list(client.responses.create(model=MODEL, input="Weather in Oslo?", tools=RESPONSE_TOOLS, stream=True))  # type: ignore[arg-type]
    done = [e for e in streamed if e.type == "response.function_call_arguments.done"]
    assert len(done) == 1 and json.loads(done[0].arguments) == json.loads(call.arguments)


def test_responses_errors_are_openai_shaped(live: Stack) -> None:
    resp = httpx.post(live.router_url + "/v1/responses", json={"model": MODEL, "input": []})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "input"
    stateful = httpx.post(
        live.router_url + "/v1/responses", json={"model": MODEL, "input": "hi", "previous_response_id": "resp_1"}
    )
    assert stateful.status_code == 400 and stateful.json()["error"]["param"] == "previous_response_id"


# ---- Anthropic -----------------------------------------------------------------------------------------------

A_TOOLS = [{"name": "get_weather", "description": "Forecast", "input_schema": WEATHER}]


@pytest.fixture(scope="module")
def claude(live: Stack) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=live.router_url, api_key="anything", max_retries=0)


def test_anthropic_tool_use_round_trip(claude: anthropic.Anthropic) -> None:
    first = claude.messages.create(
        model=MODEL, max_tokens=200, messages=[{"role": "user", "content": "Weather in Oslo?"}], tools=A_TOOLS
    )  # type: ignore[arg-type]
    assert first.stop_reason == "tool_use"
    use = next(b for b in first.content if b.type == "tool_use")
    assert use.name == "get_weather" and 1 <= use.input["days"] <= 7  # type: ignore[index]
    history = [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": [b.model_dump() for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]},
    ]
    second = claude.messages.create(model=MODEL, max_tokens=200, messages=history, tools=A_TOOLS)  # type: ignore[arg-type]
    assert second.stop_reason == "end_turn" and second.content[0].type == "text"
    assert second.usage.input_tokens > 0 and second.usage.output_tokens > 0


def test_anthropic_streaming_text_and_tools(claude: anthropic.Anthropic) -> None:
    ask = [{"role": "user", "content": "Summarize: the cat sat on the mat."}]
    whole = claude.messages.create(model="gemma2:2b", max_tokens=300, messages=ask, system="be brief")  # type: ignore[arg-type]
    with claude.messages.stream(model="gemma2:2b", max_tokens=300, messages=ask, system="be brief") as stream:  # type: ignore[arg-type]
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == whole.content[0].text and final.stop_reason == "end_turn"  # type: ignore[union-attr]
    assert final.usage.output_tokens == whole.usage.output_tokens
    with claude.messages.stream(model=MODEL, max_tokens=300, messages=ask, tools=A_TOOLS) as stream:  # type: ignore[arg-type]
        tooled = stream.get_final_message()
    assert tooled.stop_reason == "tool_use" and tooled.content[-1].type == "tool_use"
    assert tooled.content[-1].input["city"]  # type: ignore[union-attr]


def test_anthropic_count_tokens_and_auto(claude: anthropic.Anthropic) -> None:
    short = claude.messages.count_tokens(model=MODEL, messages=[{"role": "user", "content": "hi"}])
    longer = claude.messages.count_tokens(
        model=MODEL, messages=[{"role": "user", "content": "hi " * 200}], tools=A_TOOLS
    )  # type: ignore[arg-type]
    assert 0 < short.input_tokens < longer.input_tokens
    raw = claude.messages.with_raw_response.create(
        model="auto",
        max_tokens=100,
        messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=A_TOOLS,  # type: ignore[arg-type]
    )
    assert raw.headers["x-swarm-routed-model"] in ("qwen2.5-coder:7b", "llama3.1:8b")


def test_anthropic_errors_are_anthropic_shaped(claude: anthropic.Anthropic, live: Stack) -> None:
    with pytest.raises(anthropic.BadRequestError) as err:
        claude.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "wizard", "content": "hi"}])  # type: ignore[typeddict-item]
    assert err.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "messages[0].role: must be 'user' or 'assistant', got 'wizard'",
        },
    }
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.create(model="nope:1b", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    missing = httpx.post(
        live.router_url + "/v1/messages", json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}
    )
    assert missing.status_code == 400 and missing.json()["error"]["message"].startswith("max_tokens")


# ---- keys and budgets ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    with stack(tmp_path_factory.mktemp("keyed-tools"), admin_key=ADMIN_KEY) as s:
        made = httpx.post(
            s.router_url + "/admin/tenants", json={"name": "carol"}, headers={"Authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert made.status_code == 201, made.text
        yield s, made.json()["api_key"]


def _used(s: Stack, key: str) -> int:
    time.sleep(0.4)  # usage is written to the DB in batches
    me = httpx.get(s.router_url + "/tenants/me", headers={"Authorization": f"Bearer {key}"}).json()
    return int(me["usage"]["tokens_used"])


def test_anthropic_keys_and_usage_are_charged(keyed: tuple[Stack, str]) -> None:
    s, key = keyed
    anonymous = anthropic.Anthropic(base_url=s.router_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as err:
        anonymous.messages.create(model=MODEL, max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    by_x_api_key = anthropic.Anthropic(base_url=s.router_url, api_key=key, max_retries=0)
    by_bearer = anthropic.Anthropic(base_url=s.router_url, auth_token=key, max_retries=0)
    before = _used(s, key)
    whole = by_x_api_key.messages.create(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "hi"}])
    with by_bearer.messages.stream(model=MODEL, max_tokens=50, messages=[{"role": "user", "content": "hi"}]) as stream:
        streamed = stream.get_final_message()
    spent = sum(m.usage.input_tokens + m.usage.output_tokens for m in (whole, streamed))
    assert spent > 0 and _used(s, key) - before == spent


def test_responses_usage_is_charged_streamed_and_not(keyed: tuple[Stack, str]) -> None:
    s, key = keyed
    client = openai.OpenAI(base_url=s.router_url + "/v1", api_key=key, max_retries=0)
    before = _used(s, key)
    whole = client.responses.create(model=MODEL, input="Summarize: a b c")
    events = list(client.responses.create(model=MODEL, input="Summarize: a b c d", stream=True))
    completed = events[-1].response  # type: ignore[union-attr]
    spent = whole.usage.total_tokens + completed.usage.total_tokens  # type: ignore[union-attr]
    assert _used(s, key) - before == spent


def test_native_auto_with_tools_picks_a_tool_calling_model(live: Stack) -> None:
    ask = [{"role": "user", "content": "Prove that the sum of two even integers is even"}]
    body = {"model": "auto", "messages": ask, "stream": False}
    plain = httpx.post(live.router_url + "/api/chat", json=body)
    tooled = httpx.post(live.router_url + "/api/chat", json={**body, "tools": TOOLS})
    assert plain.headers["x-swarm-routed-model"] == "phi4:14b"
    assert tooled.headers["x-swarm-routed-model"] in ("qwen2.5-coder:7b", "llama3.1:8b")
    assert tooled.json()["message"]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_auto_with_tools_and_no_tool_model_is_a_400(tmp_path_factory: pytest.TempPathFactory) -> None:
    from tests.api.conftest import CONFIGS

    with stack(tmp_path_factory.mktemp("no-tools"), agents_file=CONFIGS / "agents_fast.json") as s:
        resp = httpx.post(
            s.router_url + "/v1/chat/completions", json={"model": "auto", "messages": ASK, "tools": TOOLS}
        )
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "tools"
    assert "no model in the catalog can call tools" in resp.json()["error"]["message"]
