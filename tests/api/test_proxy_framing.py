"""curl-style raw HTTP: NDJSON and SSE framing of the router's proxies and of the sim-ollama server itself."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.api.conftest import Stack

MESSAGES = [{"role": "user", "content": "Summarize: the cat sat on the mat."}]
METRICS = (
    "total_duration",
    "load_duration",
    "prompt_eval_count",
    "prompt_eval_duration",
    "eval_count",
    "eval_duration",
)


def _ndjson(url: str, path: str, body: dict[str, object]) -> tuple[httpx.Response, list[dict[str, object]]]:
    with httpx.stream("POST", url + path, json=body) as resp:
        raw = resp.read()
    assert resp.status_code == 200, raw
    assert resp.headers["content-type"] == "application/x-ndjson"
    text = raw.decode()
    assert text.endswith("\n") and "\n\n" not in text  # one object per line, no blank lines
    return resp, [json.loads(line) for line in text.splitlines()]


@pytest.mark.parametrize("target", ["router", "sim"])
@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/api/chat", {"model": "gemma2:2b", "messages": MESSAGES}, "message"),
        ("/api/generate", {"model": "gemma2:2b", "prompt": "Why is the sky blue?"}, "response"),
    ],
)
def test_ndjson_framing(live: Stack, target: str, path: str, body: dict[str, object], field: str) -> None:
    url = live.router_url if target == "router" else live.sim_url
    resp, lines = _ndjson(url, path, body)
    assert len(lines) >= 2
    assert all(line["done"] is False and field in line for line in lines[:-1])
    last = lines[-1]
    assert last["done"] is True and last["done_reason"] == "stop"
    assert all(isinstance(last.get(k), int) for k in METRICS) and int(last["eval_count"]) > 0  # type: ignore[call-overload]
    if target == "router":
        assert resp.headers["x-swarm-routed-model"] == "gemma2:2b"
        assert float(resp.headers["x-swarm-overhead-ms"]) < 1000
        assert resp.headers["cache-control"] == "no-cache"


def _sse(url: str, path: str, body: dict[str, object]) -> list[str]:
    with httpx.stream("POST", url + path, json=body) as resp:
        raw = resp.read().decode()
    assert resp.status_code == 200, raw
    assert resp.headers["content-type"].startswith("text/event-stream")
    assert raw.endswith("\n\n")
    events = raw.split("\n\n")[:-1]
    assert all(e.startswith("data: ") and "\n" not in e for e in events)
    return [e.removeprefix("data: ") for e in events]


def test_sse_chat_framing_with_usage(live: Stack) -> None:
    body = {"model": "gemma2:2b", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    events = _sse(live.router_url, "/v1/chat/completions", body)
    assert events[-1] == "[DONE]" and events.count("[DONE]") == 1
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    usage = chunks[-1]
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] > 0
    finish = chunks[-2]["choices"][0]
    assert finish["delta"] == {} and finish["finish_reason"] == "stop"
    assert [c["choices"][0]["finish_reason"] for c in chunks[:-2]] == [None] * (len(chunks) - 2)


def test_sse_without_usage_and_completions(live: Stack) -> None:
    chat = _sse(live.router_url, "/v1/chat/completions", {"model": "gemma2:2b", "messages": MESSAGES, "stream": True})
    assert all("usage" not in json.loads(e) for e in chat[:-1]) and chat[-1] == "[DONE]"
    body = {"model": "gemma2:2b", "prompt": "Once", "stream": True, "stream_options": {"include_usage": True}}
    events = _sse(live.router_url, "/v1/completions", body)
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop" and chunks[-1]["usage"]["completion_tokens"] > 0


def test_sim_server_sse(live: Stack) -> None:
    events = _sse(live.sim_url, "/v1/chat/completions", {"model": "gemma2:2b", "messages": MESSAGES, "stream": True})
    assert events[-1] == "[DONE]" and json.loads(events[0])["model"] == "gemma2:2b"


def test_errors_before_the_first_byte_keep_their_status(live: Stack) -> None:
    native = httpx.post(live.router_url + "/api/chat", json={"model": "nope:1b", "messages": MESSAGES})
    assert native.status_code == 404
    assert native.json()["error"].startswith("model 'nope:1b' is not installed on ")
    assert native.headers["content-type"].startswith("application/json")
    body = {"model": "nope:1b", "messages": MESSAGES, "stream": True}
    sse = httpx.post(live.router_url + "/v1/chat/completions", json=body)
    assert sse.status_code == 404 and sse.json()["error"]["code"] == "model_not_found"


def test_non_stream_passthrough_is_single_json(live: Stack) -> None:
    body = {"model": "gemma2:2b", "messages": MESSAGES, "stream": False, "options": {"num_predict": 2}}
    resp = httpx.post(live.router_url + "/api/chat", json=body)
    out = resp.json()
    assert resp.status_code == 200 and out["done"] is True and out["done_reason"] == "length"
    assert len(out["message"]["content"].split()) == 2
    direct = httpx.post(live.sim_url + "/api/chat", json=body).json()
    assert direct["message"] == out["message"]  # the router relays the sim's answer untouched
