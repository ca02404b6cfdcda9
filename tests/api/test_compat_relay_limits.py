"""The compat relay (/v1/chat/completions, /v1/completions, /v1/responses, /v1/messages relayed to Ollama's own
endpoints) honours the upstream size caps on both transports: a whole answer over SWARM_UPSTREAM_MAX_RESPONSE_BYTES
and one SSE event over SWARM_UPSTREAM_MAX_LINE_BYTES are refused in the caller's API shape (a 502, or the API's
in-stream error event once the head went out), while a long stream of small events passes whole."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.api.compat_relay import SseMeter
from app.backends.upstream_limits import LineSplitter
from app.core.errors import BadBackendResponse
from app.main import create_app
from tests.api.conftest import router_settings, serve
from tests.api.scripted_ollama import FakeOllama

CAP = 1_000_000
HUGE = 3 * CAP
PIECE = b"x" * 65536
MODEL = "gemma2:2b"
MESSAGES = [{"role": "user", "content": "hi"}]

WHOLE: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {
        "id": "c",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    },
    "/v1/messages": {
        "id": "m",
        "type": "message",
        "role": "assistant",
        "model": MODEL,
        "content": [{"type": "text", "text": "hello"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 3, "output_tokens": 2},
    },
}
FIRST = {  # a small valid first event per API, so the router sends its 200 head before the huge one
    "/v1/chat/completions": b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",'
    b'"choices":[{"index":0,"delta":{"content":"t"}}]}\n\n',
    "/v1/completions": b'data: {"id":"c","object":"text_completion","created":1,"model":"m",'
    b'"choices":[{"index":0,"text":"t"}]}\n\n',
    "/v1/responses": b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
    b'"item_id":"i","output_index":0,"content_index":0,"delta":"t","sequence_number":1,"logprobs":[]}\n\n',
    "/v1/messages": b'event: ping\ndata: {"type":"ping"}\n\n',
}


class SizeFaults(FakeOllama):
    """Ollama's /v1 endpoints answering with the size fault a test set: "huge_whole" (a 3 MB JSON answer),
    "huge_event" (one valid event, then a 3 MB event without its blank line), "long_stream" (3 MB of small
    events, more than either cap in total) or "ok"."""

    def app(self) -> Starlette:
        app = super().app()
        # ahead of the scripted fake's own /v1/chat/completions
        app.router.routes[:0] = [Route(path, self.compat, methods=["POST"]) for path in FIRST]
        return app

    async def compat(self, request: Request) -> Response:
        path = request.url.path
        body = json.loads(await request.body())
        self.loaded.add(str(body.get("model")))
        if not body.get("stream"):
            if self.fault == "huge_whole":
                return Response(b'{"pad":"' + b"x" * HUGE + b'"}', media_type="application/json")
            return JSONResponse(WHOLE[path])
        return StreamingResponse(self._sse(path), media_type="text/event-stream")

    async def _sse(self, path: str) -> AsyncIterator[bytes]:
        yield FIRST[path]
        if self.fault in ("huge_event", "huge_whole"):
            yield b'data: {"pad":"'
            for _ in range(HUGE // len(PIECE) + 1):
                yield PIECE
            return
        if self.fault == "long_stream":
            for _ in range(HUGE // len(FIRST[path]) + 1):
                yield FIRST[path]
        yield b"data: [DONE]\n\n"


@dataclass
class Live:
    fake: SizeFaults
    url: str


@pytest.fixture(scope="module", params=["lean", "httpx"])
def live(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    fake = SizeFaults()
    limits = {"upstream_max_response_bytes": CAP, "upstream_max_line_bytes": CAP}
    with serve(fake.app()) as fake_url:
        root = tmp_path_factory.mktemp(f"relay-{request.param}")
        cfg = router_settings(root, ollama_base_url=fake_url, ollama_transport=request.param, **limits)
        with serve(create_app(cfg)) as url:
            yield Live(fake, url)


@pytest.fixture
def fault(live: Live) -> Iterator[SizeFaults]:
    yield live.fake
    live.fake.fault = "ok"


def _oa(live: Live) -> openai.OpenAI:
    return openai.OpenAI(base_url=live.url + "/v1", api_key="x", max_retries=0, timeout=60)


def _an(live: Live) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=live.url, api_key="x", max_retries=0, timeout=60)


def test_whole_answer_over_the_cap_is_a_502_in_each_api_shape(live: Live, fault: SizeFaults) -> None:
    fault.fault = "huge_whole"
    with pytest.raises(openai.APIStatusError) as oa_err:
        _oa(live).chat.completions.create(model=MODEL, messages=MESSAGES)
    assert oa_err.value.status_code == 502 and "exceeds the 1000000-byte limit" in oa_err.value.message
    assert isinstance(oa_err.value.body, dict) and oa_err.value.body["code"] == "bad_backend_response"
    with pytest.raises(anthropic.APIStatusError) as an_err:
        _an(live).messages.create(model=MODEL, max_tokens=8, messages=MESSAGES)
    assert an_err.value.status_code == 502 and "exceeds" in an_err.value.message
    body = an_err.value.response.json()
    assert body["type"] == "error" and body["error"]["type"] == "api_error"
    with httpx.Client(base_url=live.url, timeout=60) as c:
        for path, extra in (("/v1/completions", {"prompt": "hi"}), ("/v1/responses", {"input": "hi"})):
            resp = c.post(path, json={"model": MODEL, **extra})
            assert resp.status_code == 502, (path, resp.text[:300])
            assert "exceeds" in resp.json()["error"]["message"], path
    fault.fault = "ok"  # and the service keeps serving
    reply = _oa(live).chat.completions.create(model=MODEL, messages=MESSAGES)
    assert reply.choices[0].message.content == "hello"


def test_one_sse_event_over_the_cap_ends_the_stream_with_the_apis_error_event(live: Live, fault: SizeFaults) -> None:
    fault.fault = "huge_event"
    stream = _oa(live).chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    got: list[str] = []
    with pytest.raises(openai.APIError, match=r"an SSE event from .* exceeds the 1000000-byte limit"):
        for chunk in stream:
            got.append(chunk.choices[0].delta.content or "")
    assert got == ["t"]  # the event before it was relayed; none of the huge one was
    with pytest.raises(anthropic.APIStatusError, match="exceeds"):
        for _ in _an(live).messages.create(model=MODEL, max_tokens=8, messages=MESSAGES, stream=True):
            pass
    events = list(_oa(live).responses.create(model=MODEL, input="hi", stream=True))
    assert events[-1].type == "error" and "exceeds" in events[-1].message
    with httpx.Client(base_url=live.url, timeout=60) as c:
        resp = c.post("/v1/completions", json={"model": MODEL, "prompt": "hi", "stream": True})
        assert resp.status_code == 200 and len(resp.content) < CAP  # refused, not relayed
        last = json.loads(resp.text.strip().split("\n\n")[-1].removeprefix("data: "))
        assert "exceeds" in last["error"]["message"] and last["error"]["code"] == "bad_backend_response"
        assert c.get("/healthz").status_code == 200


def test_a_long_stream_of_small_events_is_relayed_whole(live: Live, fault: SizeFaults) -> None:
    """The caps bound one event and one whole answer, never the length of a stream."""
    fault.fault = "long_stream"
    with httpx.Client(base_url=live.url, timeout=60) as c:
        body = {"model": MODEL, "messages": MESSAGES, "stream": True}
        resp = c.post("/v1/chat/completions", json=body)
    assert resp.status_code == 200 and len(resp.content) > HUGE
    events = [e for e in resp.text.split("\n\n") if e]
    assert events[-1] == "data: [DONE]" and not any('"error"' in e for e in events)


def test_sse_events_split_across_pieces() -> None:
    """A blank line split between two pieces still ends an event; pieces without one are kept, not searched again."""
    meter = SseMeter("openai", max_event=100)
    assert meter.feed(b'data: {"a":1}\n') == b""
    assert meter.feed(b'\ndata: {"usage":{"prompt_tokens":2,"completion_tokens":3}}') == b'data: {"a":1}\n\n'
    assert meter.feed(b"\n") == b""
    assert meter.feed(b"\n") == b'data: {"usage":{"prompt_tokens":2,"completion_tokens":3}}\n\n'
    assert meter.usage == {"prompt_eval_count": 2, "eval_count": 3}
    for piece in (b"data: ", b"x" * 60):
        meter.feed(piece)
    with pytest.raises(BadBackendResponse, match="an SSE event from the backend exceeds the 100-byte limit"):
        meter.feed(b"y" * 60)
    assert meter.flush() == b""  # the refused event is dropped, never relayed


def test_line_splitter_event_mode_caps_an_event_that_ends_late() -> None:
    splitter = LineSplitter("u", 10, sep=b"\n\n", what="an SSE event")
    assert splitter.feed(b"ab\n\ncd\n") == b"ab\n\n"
    with pytest.raises(BadBackendResponse, match="an SSE event from u exceeds the 10-byte limit"):
        splitter.feed(b"0123456789\n\n")
    lines = LineSplitter("u", 10)
    assert lines.feed(b"a\nb") == b"a\n" and lines.feed(b"c\n") == b"bc\n" and lines.pending == b""


def test_in_process_backends_translated_answers_are_capped_too(tmp_path: Path) -> None:
    """The same cap holds for the translation of a backend without Ollama's /v1 endpoints (here the simulator)."""
    cfg = router_settings(tmp_path, backend="sim", upstream_max_response_bytes=1024, upstream_max_line_bytes=1024)
    with serve(create_app(cfg)) as url:
        client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=60)
        assert len(client.embeddings.create(model=MODEL, input="a").data) == 1  # a small answer passes
        with pytest.raises(openai.APIStatusError) as err:
            client.embeddings.create(model=MODEL, input=["a"] * 20)
    assert err.value.status_code == 502
    assert "the answer from the backend's /v1/embeddings exceeds the 1024-byte limit" in err.value.message
