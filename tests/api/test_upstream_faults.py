"""Fault suite: a scripted fake Ollama on loopback (refused, 404, 500, invalid JSON, stall, mid-stream break, huge
body, hostile field types, deep JSON) never gives a 500 from the router; every caller gets its API's error shape,
jobs fail with a reason, and the service keeps serving."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from app.main import create_app
from tests.api.conftest import router_settings, serve
from tests.api.scripted_ollama import FakeOllama

CHAT = {"model": "gemma2:2b", "messages": [{"role": "user", "content": "hi"}]}
GEN = {"model": "gemma2:2b", "prompt": "hi"}
JOB = {"subtasks": [{"id": "a", "task_type": "code", "description": "write hello world"}], "routing": "greedy"}
LIMITS = {"backend_deadline_s": 1.5, "upstream_max_line_bytes": 1_000_000, "upstream_max_response_bytes": 1_000_000}


@dataclass
class Faulty:
    fake: FakeOllama
    url: str


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Faulty]:
    fake = FakeOllama()
    fake.stall_s = 4.0
    with serve(fake.app()) as fake_url:
        cfg = router_settings(tmp_path_factory.mktemp("faults"), ollama_base_url=fake_url, **LIMITS)
        with serve(create_app(cfg)) as url:
            yield Faulty(fake, url)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def refused(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cfg = router_settings(tmp_path_factory.mktemp("refused"), ollama_base_url=f"http://127.0.0.1:{_free_port()}")
    with serve(create_app(cfg)) as url:
        yield url


def ollama_shape(resp: httpx.Response) -> str:
    body = resp.json()
    assert set(body) == {"error"} and isinstance(body["error"], str) and body["error"], body
    return str(body["error"])


def openai_shape(resp: httpx.Response) -> str:
    err = resp.json()["error"]
    assert {"message", "type", "param", "code"} <= set(err) and err["message"], err
    return str(err["message"])


def last_ndjson_error(resp: httpx.Response) -> str:
    last = json.loads(resp.text.strip().splitlines()[-1])
    assert "error" in last and isinstance(last["error"], str), resp.text[-300:]
    return str(last["error"])


def last_sse_error(resp: httpx.Response) -> str:
    events = [e for e in resp.text.split("\n\n") if e.startswith("data: ")]
    last = json.loads(events[-1].removeprefix("data: "))
    return str(last["error"]["message"])


def exercise(url: str, *, streams_only: bool = False) -> list[tuple[str, str]]:
    """Every proxy family, streamed and not, plus a job: (what, error message) for each call, shapes asserted."""
    out: list[tuple[str, str]] = []
    with httpx.Client(base_url=url, timeout=30) as c:
        for path, body in (("/api/chat", CHAT), ("/api/generate", GEN)):
            resp = c.post(path, json={**body, "stream": False})
            if not streams_only:
                assert 400 <= resp.status_code != 500, (path, resp.status_code, resp.text[:300])
                out.append((path, ollama_shape(resp)))
            resp = c.post(path, json=body)
            assert resp.status_code != 500, (path, resp.text[:300])
            out.append((path + " stream", last_ndjson_error(resp) if resp.status_code == 200 else ollama_shape(resp)))
        oa = {"model": "gemma2:2b", "messages": CHAT["messages"]}
        resp = c.post("/v1/chat/completions", json=oa)
        # /v1 relays Ollama's own OpenAI-compatible answer byte for byte; a whole answer that is not a JSON object
        # and an upstream failure are a 502 in OpenAI's shape
        assert resp.status_code != 500, resp.text[:300]
        if resp.status_code != 200:
            assert "error" in resp.json()
        resp = c.post("/v1/chat/completions", json={**oa, "stream": True})
        assert resp.status_code != 500, resp.text[:300]  # and the body arrives complete (no router crash)
        if resp.status_code != 200:
            assert "error" in resp.json()
        if not streams_only:
            for path, body in (("/api/embed", {"input": "x"}),):
                resp = c.post(path, json={"model": "gemma2:2b", **body})
                assert 400 <= resp.status_code != 500, (path, resp.status_code, resp.text[:300])
                out.append((path, ollama_shape(resp) if path.startswith("/api") else openai_shape(resp)))
        job = c.post("/jobs", params={"wait": "true"}, json=JOB)
        assert job.status_code == 200, job.text[:300]
        if not streams_only:
            assert job.json()["status"] == "failed" and job.json()["error"], job.json()
            out.append(("/jobs", str(job.json()["error"])))
        assert c.get("/healthz").status_code == 200
    return out


def test_refused_upstream(refused: str) -> None:
    for what, message in exercise(refused):
        assert "cannot connect" in message, (what, message)


@pytest.mark.parametrize(
    ("fault", "needle"),
    [
        ("404", "404|does not serve"),
        ("500", "CUDA out of memory"),
        ("invalid_json", "invalid JSON"),
        ("stall", "deadline"),
        ("mid_stream_break", "broke"),
        ("huge", "exceeds"),
        ("hostile", "non-count|malformed embeddings"),
        ("deep", "nested"),
    ],
)
def test_fault(faulty: Faulty, fault: str, needle: str) -> None:
    faulty.fake.fault = fault
    try:
        # a non-streamed call of a mid-stream break gets a complete answer
        for what, message in exercise(faulty.url, streams_only=fault == "mid_stream_break"):
            assert re.search(needle, message), (what, message)
    finally:
        faulty.fake.fault = "ok"
    with httpx.Client(base_url=faulty.url, timeout=30) as c:  # the service keeps serving
        resp = c.post("/api/chat", json={**CHAT, "stream": False})
        assert resp.status_code == 200 and resp.json()["eval_count"] == 2
        assert c.get("/jobs").status_code == 200


def test_hostile_ps_entries_are_a_clear_error() -> None:
    """/api/ps fields the router reads are type-checked (a bad upstream, never a TypeError)."""
    from app.backends.ollama_wire import loaded_model
    from app.core.errors import BadBackendResponse

    with pytest.raises(BadBackendResponse, match="not a byte count"):
        loaded_model({"name": "gemma2:2b", "size": "lots"})
    with pytest.raises(BadBackendResponse, match="not a string"):
        loaded_model({"name": ["x"], "size": 1})
    assert loaded_model({"name": "m", "size": 5, "size_vram": None}).size_vram == 0
