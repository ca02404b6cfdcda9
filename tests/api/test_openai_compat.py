"""The real `openai` package against the live router (upstream: the simulated Ollama server over HTTP)."""

from __future__ import annotations

import base64
import struct

import httpx
import openai
import pytest

from tests.api.conftest import Stack

CODE_PROMPT = "Write a Python function that parses a CSV file and returns the rows as dicts"
MESSAGES = [{"role": "user", "content": "Summarize: the cat sat on the mat."}]


@pytest.fixture(scope="module")
def client(live: Stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.router_url + "/v1", api_key="anything", max_retries=0)


def test_chat_completion_non_streaming(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(model="gemma2:2b", messages=MESSAGES, max_tokens=500)
    done = raw.parse()
    assert raw.headers["x-swarm-routed-model"] == "gemma2:2b"
    assert float(raw.headers["x-swarm-overhead-ms"]) >= 0.0
    assert done.object == "chat.completion" and done.id.startswith("chatcmpl-")
    assert done.model == "gemma2:2b"
    choice = done.choices[0]
    assert choice.message.role == "assistant" and len(choice.message.content or "") > 10
    assert choice.finish_reason == "stop"
    assert done.usage is not None and done.usage.completion_tokens > 0
    assert done.usage.total_tokens == done.usage.prompt_tokens + done.usage.completion_tokens


def test_chat_streaming_with_usage_matches_non_streaming(client: openai.OpenAI) -> None:
    full = client.chat.completions.create(model="gemma2:2b", messages=MESSAGES)
    chunks = list(
        client.chat.completions.create(
            model="gemma2:2b", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content  # the sim is deterministic per (seed, model, prompt)
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.completion_tokens == full.usage.completion_tokens  # type: ignore[union-attr]
    assert len({c.id for c in chunks}) == 1


def test_max_tokens_truncates_with_length(client: openai.OpenAI) -> None:
    done = client.chat.completions.create(model="gemma2:2b", messages=MESSAGES, max_tokens=3)
    assert done.choices[0].finish_reason == "length"
    assert len((done.choices[0].message.content or "").split()) == 3


@pytest.mark.anyio
async def test_async_client_stream_and_not(live: Stack) -> None:
    aclient = openai.AsyncOpenAI(base_url=live.router_url + "/v1", api_key="x", max_retries=0)
    done = await aclient.chat.completions.create(model="llama3.1:8b", messages=MESSAGES)
    stream = await aclient.chat.completions.create(
        model="llama3.1:8b", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    pieces = [c async for c in stream]
    assert "".join(c.choices[0].delta.content or "" for c in pieces if c.choices) == done.choices[0].message.content
    assert pieces[-1].usage is not None and pieces[-1].usage.total_tokens == done.usage.total_tokens  # type: ignore[union-attr]
    await aclient.close()


def test_auto_routes_code_to_the_coder_model(client: openai.OpenAI) -> None:
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": CODE_PROMPT}]
    )
    # G = 24 GB fits every model: the best code capability net of costs is the coder.
    assert raw.headers["x-swarm-routed-model"] == "qwen2.5-coder:7b"
    assert raw.parse().model == "qwen2.5-coder:7b"
    math = client.chat.completions.with_raw_response.create(
        model="auto", messages=[{"role": "user", "content": "Prove that the sum of two even integers is even"}]
    )
    assert math.headers["x-swarm-routed-model"] == "phi4:14b"


def test_completions_both_modes(client: openai.OpenAI) -> None:
    done = client.completions.create(model="gemma2:2b", prompt="Once upon a time")
    assert done.object == "text_completion" and done.choices[0].text
    assert done.choices[0].finish_reason == "stop" and done.usage and done.usage.completion_tokens > 0
    parts = list(
        client.completions.create(
            model="gemma2:2b", prompt="Once upon a time", stream=True, stream_options={"include_usage": True}
        )
    )
    assert "".join(p.choices[0].text for p in parts if p.choices) == done.choices[0].text
    assert parts[-1].choices == [] and parts[-1].usage is not None


def test_embeddings_float_and_base64(client: openai.OpenAI, live: Stack) -> None:
    floats = client.embeddings.create(model="gemma2:2b", input=["a", "b"], encoding_format="float")
    default = client.embeddings.create(model="gemma2:2b", input=["a", "b"])  # the SDK asks for base64
    assert len(floats.data) == 2 and len(floats.data[0].embedding) == 64
    assert default.data[1].embedding == pytest.approx(floats.data[1].embedding, rel=1e-6)
    raw = httpx.post(
        live.router_url + "/v1/embeddings", json={"model": "gemma2:2b", "input": "a", "encoding_format": "base64"}
    ).json()
    decoded = struct.unpack("<64f", base64.b64decode(raw["data"][0]["embedding"]))
    assert list(decoded) == pytest.approx(floats.data[0].embedding, rel=1e-6)


def test_models_list_and_retrieve(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["gemma2:2b", "qwen2.5-coder:7b", "llama3.1:8b", "phi4:14b", "auto"]
    assert client.models.retrieve("phi4:14b").id == "phi4:14b"
    assert client.models.retrieve("auto").owned_by == "swarm-router"
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("nope:1b")
    assert err.value.status_code == 404


def test_unknown_model_is_openai_shaped_404(client: openai.OpenAI, live: Stack) -> None:
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="nope:1b", messages=MESSAGES)
    assert err.value.code == "model_not_found"
    resp = httpx.post(live.router_url + "/v1/chat/completions", json={"model": "nope:1b", "messages": MESSAGES})
    assert resp.status_code == 404
    error = resp.json()["error"]
    assert "`ollama pull nope:1b`" in error.pop("message")
    assert {"error": error} == {
        "error": {
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_found",
        }
    }


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "gemma2:2b"}, "messages"),
        ({"model": "gemma2:2b", "messages": []}, "messages"),
        ({"messages": MESSAGES}, "model"),
        ({"model": "gemma2:2b", "messages": MESSAGES, "temperature": "hot"}, "temperature"),
        ({"model": "gemma2:2b", "messages": MESSAGES, "max_tokens": 0}, "max_tokens"),
        ({"model": "gemma2:2b", "messages": [{"content": "no role"}]}, "messages[0].role"),
        ({"model": "gemma2:2b", "messages": MESSAGES, "stream": "yes"}, "stream"),
        ({"model": "gemma2:2b", "messages": MESSAGES, "n": 3}, "n"),
        ({"model": "gemma2:2b", "messages": MESSAGES, "tools": {"name": "f"}}, "tools"),
        ({"model": "gemma2:2b", "messages": MESSAGES, "tools": [{"type": "retrieval"}]}, "tools[0]"),
        ({"model": "gemma2:2b", "messages": MESSAGES, "tools": [{"function": {"name": ""}}]}, "tools[0].function.name"),
        (
            {"model": "gemma2:2b", "messages": MESSAGES, "tools": [{"function": {"name": "f", "parameters": [1]}}]},
            "tools[0].function.parameters",
        ),
    ],
)
def test_invalid_bodies_name_the_field(live: Stack, body: dict[str, object], param: str) -> None:
    resp = httpx.post(live.router_url + "/v1/chat/completions", json=body)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert param.split("[")[0] in error["message"]


def test_not_json_is_400(live: Stack) -> None:
    resp = httpx.post(live.router_url + "/v1/chat/completions", content=b"{not json")
    assert resp.status_code == 400 and resp.json()["error"]["message"].startswith("invalid JSON body")


def test_sim_server_speaks_v1_too(live: Stack) -> None:
    sim = openai.OpenAI(base_url=live.sim_url + "/v1", api_key="x", max_retries=0)
    done = sim.chat.completions.create(model="gemma2:2b", messages=MESSAGES)
    assert done.choices[0].message.content and done.model == "gemma2:2b"
    assert [m.id for m in sim.models.list()] == ["gemma2:2b", "qwen2.5-coder:7b", "llama3.1:8b", "phi4:14b"]


def test_valid_tools_pass_through_unchanged() -> None:
    from app.backends.openai_compat import chat_request

    tools = [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}},
        {"function": {"name": "no_type_given"}},  # OpenAI's default type is function
    ]
    native = chat_request({"messages": MESSAGES, "tools": tools, "n": 1}, "gemma2:2b")
    assert native["tools"] == tools and "tools" not in chat_request({"messages": MESSAGES, "tools": []}, "m")
