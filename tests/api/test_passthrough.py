"""Pass-through, table-driven: a client request → what the (recording, fake) Ollama received → what the client got.
Every field reaches Ollama unchanged except `model` for model="auto" (and, on /v1 chat, `max_tokens` added when only
`max_completion_tokens` is set: Ollama reads only the former); every field Ollama returns reaches the client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from tests.api.conftest import router_settings, serve
from tests.api.fake_ollama import FakeOllama

IMAGE = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather of a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]
SCHEMA = {"type": "object", "properties": {"answer": {"type": "string"}}}


def enc(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def sse(*objs: Any, done: bool = True) -> bytes:
    return b"".join(b"data: " + json.dumps(o).encode() + b"\n\n" for o in objs) + (b"data: [DONE]\n\n" if done else b"")


CHAT_FINAL = {
    "model": "llama3.1:8b",
    "created_at": "2025-01-01T00:00:00Z",
    "message": {
        "role": "assistant",
        "content": "",
        "thinking": "the user wants weather",
        "tool_calls": [
            {"id": "call_1", "function": {"index": 0, "name": "get_weather", "arguments": {"city": "Oslo"}}}
        ],
    },
    "logprobs": [{"token": "x", "logprob": -0.1}],
    "done": True,
    "done_reason": "stop",
    "eval_count": 7,
    "prompt_eval_count": 11,
    "x_future_field": {"kept": True},
}
OPENAI_REPLY = {
    "id": "chatcmpl-9",
    "object": "chat.completion",
    "created": 1,
    "model": "llama3.1:8b",
    "system_fingerprint": "fp_ollama",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "",
                "reasoning": "hmm",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "index": 0,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": "{}"},
                    }
                ],
            },
            "logprobs": {"content": [{"token": "x", "logprob": -0.1, "bytes": [120], "top_logprobs": []}]},
            "finish_reason": "tool_calls",
        }
    ],
    "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
    "x_future_field": 1,
}
CHUNK = {"id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "llama3.1:8b"}
TOOL_STREAM = [
    {**CHUNK, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
    {
        **CHUNK,
        "choices": [
            {
                "index": 0,
                "delta": {
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                        }
                    ]
                },
                "finish_reason": None,
            }
        ],
    },
    {**CHUNK, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
]
USAGE_CHUNK = {**CHUNK, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}
RESPONSE = {
    "id": "resp_1",
    "object": "response",
    "status": "completed",
    "model": "llama3.1:8b",
    "output": [{"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "{}"}],
    "usage": {"input_tokens": 9, "output_tokens": 4, "total_tokens": 13},
    "x_future_field": [1, 2],
}
ANTHROPIC = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "llama3.1:8b",
    "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Oslo"}}],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 6},
}


@dataclass
class Case:
    name: str
    path: str
    request: dict[str, Any]
    upstream_path: str
    reply: bytes
    reply_type: str = "application/json"
    # what Ollama must have received, when it differs from the request (None: the very bytes the client sent)
    received: dict[str, Any] | None = None
    # what the client must get, when it differs from the reply (None: the very bytes Ollama sent)
    client_gets: bytes | None = None
    routed: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


NATIVE_CHAT = {
    "model": "llama3.1:8b",
    "messages": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather in Oslo?", "images": [IMAGE]},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}],
        },
        {"role": "tool", "content": "sunny", "tool_name": "get_weather"},
    ],
    "tools": TOOLS,
    "think": "high",
    "format": SCHEMA,
    "logprobs": True,
    "top_logprobs": 2,
    "options": {"num_ctx": 16384, "temperature": 0.1, "top_k": 7, "num_gpu": 99, "mirostat": 2},
    "keep_alive": "1h",
    "stream": False,
    "x_future_field": {"a": 1},
}
OPENAI_CHAT = {
    "model": "llama3.1:8b",
    "messages": [
        {"role": "developer", "content": "be brief"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64," + IMAGE}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
    ],
    "tools": TOOLS,
    "tool_choice": "required",
    "parallel_tool_calls": False,
    "response_format": {"type": "json_schema", "json_schema": {"name": "a", "schema": SCHEMA}},
    "reasoning_effort": "low",
    "reasoning": {"effort": "low"},
    "logprobs": True,
    "top_logprobs": 2,
    "seed": 3,
    "max_completion_tokens": 50,
    "user": "u1",
    "metadata": {"k": "v"},
    "x_future_field": True,
}

CASES = [
    Case("native chat: every field", "/api/chat", NATIVE_CHAT, "/api/chat", enc(CHAT_FINAL), received=NATIVE_CHAT),
    Case(
        "native chat: keep_alive added only when absent",
        "/api/chat",
        {k: v for k, v in NATIVE_CHAT.items() if k != "keep_alive"},
        "/api/chat",
        enc(CHAT_FINAL),
        received={**NATIVE_CHAT, "keep_alive": "10m"},
    ),
    Case(
        "native generate: images, raw, suffix, template, context",
        "/api/generate",
        {
            "model": "gemma2:2b",
            "prompt": "hi",
            "images": [IMAGE],
            "raw": True,
            "suffix": "end",
            "template": "{{ .Prompt }}",
            "context": [1, 2],
            "system": "s",
            "think": False,
            "options": {"num_ctx": 4096},
            "keep_alive": 0,
            "stream": False,
        },
        "/api/generate",
        enc({"model": "gemma2:2b", "response": "ok", "done": True, "context": [1, 2, 3], "x_future_field": 2}),
        received={
            "model": "gemma2:2b",
            "prompt": "hi",
            "images": [IMAGE],
            "raw": True,
            "suffix": "end",
            "template": "{{ .Prompt }}",
            "context": [1, 2],
            "system": "s",
            "think": False,
            "options": {"num_ctx": 4096},
            "keep_alive": 0,
            "stream": False,
        },
    ),
    Case(
        "native embed: truncate, dimensions, options",
        "/api/embed",
        {
            "model": "gemma2:2b",
            "input": ["a", "b"],
            "truncate": False,
            "dimensions": 8,
            "options": {"num_ctx": 512},
            "keep_alive": "2m",
        },
        "/api/embed",
        enc({"model": "gemma2:2b", "embeddings": [[0.1], [0.2]], "prompt_eval_count": 2, "x_future_field": 3}),
        received={
            "model": "gemma2:2b",
            "input": ["a", "b"],
            "truncate": False,
            "dimensions": 8,
            "options": {"num_ctx": 512},
            "keep_alive": "2m",
        },
    ),
    Case(
        "openai chat: every field, bytes as sent",
        "/v1/chat/completions",
        OPENAI_CHAT,
        "/v1/chat/completions",
        enc(OPENAI_REPLY),
    ),
    Case(
        "openai chat stream with usage: bytes both ways",
        "/v1/chat/completions",
        {**OPENAI_CHAT, "stream": True, "stream_options": {"include_usage": True}},
        "/v1/chat/completions",
        sse(*TOOL_STREAM, USAGE_CHUNK),
        "text/event-stream",
    ),
    Case(
        "openai chat stream without usage: asked for upstream, dropped on the way back",
        "/v1/chat/completions",
        {**OPENAI_CHAT, "stream": True},
        "/v1/chat/completions",
        sse(*TOOL_STREAM, USAGE_CHUNK),
        "text/event-stream",
        received={**OPENAI_CHAT, "stream": True, "stream_options": {"include_usage": True}},
        client_gets=sse(*TOOL_STREAM),
    ),
    Case(
        "openai completions: suffix, logprobs, echo",
        "/v1/completions",
        {"model": "gemma2:2b", "prompt": "def f(", "suffix": "return 1", "logprobs": 2, "echo": False, "max_tokens": 9},
        "/v1/completions",
        enc(
            {
                "id": "cmpl-1",
                "object": "text_completion",
                "choices": [{"text": "x", "index": 0, "finish_reason": "stop", "logprobs": None}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        ),
    ),
    Case(
        "openai embeddings: dimensions, encoding",
        "/v1/embeddings",
        {"model": "gemma2:2b", "input": "a", "dimensions": 4, "encoding_format": "base64", "user": "u"},
        "/v1/embeddings",
        enc(
            {
                "object": "list",
                "data": [{"object": "embedding", "index": 0, "embedding": "AAAA"}],
                "model": "gemma2:2b",
                "usage": {"prompt_tokens": 1, "total_tokens": 1},
            }
        ),
    ),
    Case(
        "responses: tools, reasoning, text format",
        "/v1/responses",
        {
            "model": "llama3.1:8b",
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
            "instructions": "be brief",
            "tools": [{"type": "function", "name": "get_weather", "parameters": SCHEMA}],
            "tool_choice": {"type": "function", "name": "get_weather"},
            "reasoning": {"effort": "high"},
            "text": {"format": {"type": "json_object"}},
            "max_output_tokens": 40,
            "store": False,
            "x_future_field": 1,
        },
        "/v1/responses",
        enc(RESPONSE),
    ),
    Case(
        "responses: streamed",
        "/v1/responses",
        {"model": "llama3.1:8b", "input": "hi", "stream": True},
        "/v1/responses",
        b'event: response.created\ndata: {"type":"response.created","sequence_number":0}\n\n'
        b'event: response.completed\ndata: {"type":"response.completed","response":'
        + enc(RESPONSE)
        + b',"sequence_number":1}\n\n',
        "text/event-stream",
    ),
    Case(
        "anthropic messages: tools, thinking, system blocks",
        "/v1/messages",
        {
            "model": "llama3.1:8b",
            "max_tokens": 64,
            "system": [{"type": "text", "text": "be brief"}],
            "messages": [
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "weather?"},
                        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": IMAGE}},
                    ],
                }
            ],
            "tools": [{"name": "get_weather", "input_schema": SCHEMA}],
            "tool_choice": {"type": "any"},
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "metadata": {"user_id": "u"},
            "top_k": 5,
        },
        "/v1/messages",
        enc(ANTHROPIC),
    ),
    Case(
        "model auto with tools: only model changes, to a tool-calling model",
        "/v1/chat/completions",
        {**OPENAI_CHAT, "model": "auto"},
        "/v1/chat/completions",
        enc(OPENAI_REPLY),
        received={**OPENAI_CHAT, "model": "ROUTED"},
        routed="tools",
    ),
]


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeOllama, str]]:
    fake = FakeOllama()
    with serve(fake.app()) as fake_url:
        root: Path = tmp_path_factory.mktemp("pass")
        with serve(create_app(router_settings(root, ollama_base_url=fake_url))) as router_url:
            yield fake, router_url


def limit_added(path: str, request: dict[str, Any]) -> dict[str, Any]:
    """The field the router adds to a /v1 chat request setting only max_completion_tokens, which Ollama's /v1 does
    not read: max_tokens, with the same value (appended to the body's bytes)."""
    limit = request.get("max_completion_tokens")
    if path == "/v1/chat/completions" and request.get("max_tokens") is None and isinstance(limit, int):
        return {"max_tokens": limit}
    return {}


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_passes_through(rig: tuple[FakeOllama, str], case: Case) -> None:
    fake, router_url = rig
    fake.script(case.upstream_path, case.reply, case.reply_type)
    sent = enc(case.request)
    added = limit_added(case.path, case.request)
    resp = httpx.post(router_url + case.path, content=sent, headers={"content-type": "application/json"}, timeout=30)
    assert resp.status_code == 200, resp.text
    got = fake.last(case.upstream_path)
    if case.routed is not None:
        model = resp.headers["x-swarm-routed-model"]
        assert model in ("qwen2.5-coder:7b", "llama3.1:8b")  # the catalog's tool-calling models
        assert got.json() == {**case.request, "model": model, **added}
    elif case.received is None:
        appended = b"".join(b',"%s":%d' % (k.encode(), v) for k, v in added.items())
        assert got.body == (sent[:-1] + appended + b"}" if added else sent)
    else:
        assert got.json() == {**case.received, **added}
    expected = case.reply if case.client_gets is None else case.client_gets
    if case.path.startswith("/api/"):  # native answers are parsed (usage is read) and re-encoded: same fields
        assert resp.json() == json.loads(expected)
    else:  # compatible answers are relayed as Ollama's bytes
        assert resp.content == expected


def test_upstream_error_status_and_body_reach_the_client(rig: tuple[FakeOllama, str]) -> None:
    fake, router_url = rig
    # An installed model (the fake's /api/tags lists it) whose call Ollama refuses: its error reaches the client.
    error = b'{"error":{"message":"model \\"gemma2:2b\\" not found","type":"not_found_error","param":null,"code":null}}'
    fake.script("/v1/chat/completions", error, status=404)
    body = {"model": "gemma2:2b", "messages": [{"role": "user", "content": "a"}]}
    resp = httpx.post(router_url + "/v1/chat/completions", json=body)
    assert resp.status_code == 404 and resp.content == error
    # A model the backend does not list is refused by the router itself, naming how to pull it.
    resp = httpx.post(router_url + "/v1/chat/completions", json={**body, "model": "x"})
    assert resp.status_code == 404 and "`ollama pull x`" in resp.json()["error"]["message"]


def test_upstream_credentials_are_sent_and_never_shown(tmp_path: Path) -> None:
    fake = FakeOllama()
    with serve(fake.app()) as fake_url:
        url = fake_url.replace("http://", "http://admin:s3cret@")
        cfg = router_settings(tmp_path, ollama_base_url=url, ollama_headers={"X-Org": "o-1"})
        with serve(create_app(cfg)) as router_url:
            me = httpx.get(router_url + "/tenants/me")
            assert me.status_code == 200 and "s3cret" not in me.text
            assert me.json()["gpu"]["backend"] == fake_url
            fake.script("/v1/messages", enc(ANTHROPIC))
            httpx.post(
                router_url + "/v1/messages",
                json={"model": "gemma2:2b", "max_tokens": 5, "messages": [{"role": "user", "content": "a"}]},
            )
    assert {r.path for r in fake.received} >= {"/api/ps", "/v1/messages"}
    for received in fake.received:
        assert received.headers["authorization"] == "Basic YWRtaW46czNjcmV0" and received.headers["x-org"] == "o-1"


@pytest.mark.parametrize(
    ("path", "body", "tail"),
    [
        ("/v1/chat/completions", {**OPENAI_CHAT, "stream": True}, b'data: {"error":{"message":'),
        (
            "/v1/messages",
            {**CASES[-2].request, "stream": True},
            b'event: error\ndata: {"type":"error","error":{"type":"api_error"',
        ),
        (
            "/v1/responses",
            {"model": "llama3.1:8b", "input": "hi", "stream": True},
            b'event: error\ndata: {"type":"error"',
        ),
    ],
)
def test_a_stream_breaking_off_ends_with_that_apis_error_event(
    rig: tuple[FakeOllama, str], path: str, body: dict[str, Any], tail: bytes
) -> None:
    fake, router_url = rig
    head = sse(TOOL_STREAM[0], done=False)
    fake.script(path, head, "text/event-stream")
    fake.broken.add(path)
    try:
        resp = httpx.post(router_url + path, json=body, timeout=30)
    finally:
        fake.broken.discard(path)
    assert resp.status_code == 200 and resp.content.startswith(head)
    assert resp.content[len(head) :].startswith(tail) and b"broke" in resp.content


def test_an_ollama_without_the_endpoint_gets_a_clear_error_in_the_apis_shape(rig: tuple[FakeOllama, str]) -> None:
    fake, router_url = rig
    fake.script("/v1/responses", b"404 page not found", "text/plain", status=404)
    resp = httpx.post(router_url + "/v1/responses", json={"model": "gemma2:2b", "input": "hi"})
    assert resp.status_code == 501
    assert (
        resp.json()["error"]["message"]
        == "the upstream Ollama does not serve /v1/responses: update Ollama (see the README)"
    )
    fake.script("/v1/messages", b"404 page not found", "text/plain", status=404)
    resp = httpx.post(
        router_url + "/v1/messages",
        json={"model": "gemma2:2b", "max_tokens": 5, "messages": [{"role": "user", "content": "a"}]},
    )
    assert resp.status_code == 501 and resp.json()["type"] == "error"
