"""Hostile client data never produces a 500: lone surrogates and 100,000-deep JSON on every endpoint that takes a
body get a clear 4xx in the caller's API shape."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest

from tests.api.conftest import ADMIN_KEY, Stack

SURROGATE = '"\\ud800"'
OLLAMA = [
    ("/api/chat", '{"model":%s,"messages":[{"role":"user","content":"hi"}]}'),
    ("/api/generate", '{"model":%s,"prompt":"hi"}'),
    ("/api/embed", '{"model":%s,"input":"hi"}'),
    ("/api/embeddings", '{"model":%s,"prompt":"hi"}'),
    ("/api/show", '{"model":%s}'),
    ("/api/chat", '{"model":"gemma2:2b","messages":[{"role":"user","content":%s}]}'),
]
OPENAI = [
    ("/v1/chat/completions", '{"model":%s,"messages":[{"role":"user","content":"hi"}]}'),
    ("/v1/chat/completions", '{"model":"auto","messages":[{"role":"user","content":%s}],"stream":true}'),
    ("/v1/completions", '{"model":%s,"prompt":"hi"}'),
    ("/v1/embeddings", '{"model":%s,"input":"hi"}'),
]
OURS = [
    ("/route", '{"subtasks":[{"id":"a","task_type":"code","description":%s}]}'),
    ("/jobs", '{"query":%s}'),
]
DEEP = b"[" * 100_000 + b"]" * 100_000


@pytest.fixture(scope="module")
def http(live: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live.router_url, timeout=30) as c:
        yield c


def _post(http: httpx.Client, path: str, raw: bytes) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if path.startswith("/admin/"):  # checked before the body is read (api/authfirst.py)
        headers["authorization"] = f"Bearer {ADMIN_KEY}"
    return http.post(path, content=raw, headers=headers)


@pytest.mark.parametrize(("path", "template"), OLLAMA)
def test_lone_surrogate_ollama(http: httpx.Client, path: str, template: str) -> None:
    resp = _post(http, path, (template % SURROGATE).encode())
    assert resp.status_code == 400, resp.text[:300]
    assert "surrogate" in resp.json()["error"]


@pytest.mark.parametrize(("path", "template"), OPENAI)
def test_lone_surrogate_openai(http: httpx.Client, path: str, template: str) -> None:
    resp = _post(http, path, (template % SURROGATE).encode())
    assert resp.status_code == 400, resp.text[:300]
    err = resp.json()["error"]
    assert "surrogate" in err["message"] and err["type"] == "invalid_request_error"


@pytest.mark.parametrize(("path", "template"), OURS)
def test_lone_surrogate_ours(http: httpx.Client, path: str, template: str) -> None:
    resp = _post(http, path, (template % SURROGATE).encode())
    assert resp.status_code == 422, resp.text[:300]
    assert "unicode" in resp.json()["error"]["message"].lower()


def test_surrogate_pairs_are_fine(http: httpx.Client) -> None:
    raw = '{"model":"gemma2:2b","messages":[{"role":"user","content":"\\ud83d\\ude00"}],"stream":false}'
    assert _post(http, "/api/chat", raw.encode()).status_code == 200


@pytest.mark.parametrize("path", ["/api/chat", "/v1/chat/completions", "/route", "/jobs", "/admin/tenants", "/bench"])
def test_deep_json(http: httpx.Client, path: str) -> None:
    resp = _post(http, path, DEEP)
    assert resp.status_code in (400, 422), (resp.status_code, resp.text[:300])
    body = resp.json()["error"]
    assert re.search("deep|parsing the body", body if isinstance(body, str) else body["message"])
