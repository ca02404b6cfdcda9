"""The real `ollama` package and raw HTTP against the live router's native /api/*: routing, errors, auth, cancel."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import ollama
import pytest

from tests.api.conftest import ADMIN_KEY, Stack, stack

MESSAGES = [{"role": "user", "content": "Summarize: the cat sat on the mat."}]
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def client(live: Stack) -> ollama.Client:
    return ollama.Client(host=live.router_url)


def test_chat_stream_matches_non_stream(client: ollama.Client) -> None:
    full = client.chat(model="gemma2:2b", messages=MESSAGES)
    parts = list(client.chat(model="gemma2:2b", messages=MESSAGES, stream=True))
    assert len(parts) >= 2 and all(not p.done for p in parts[:-1])
    last = parts[-1]
    assert last.done and last.done_reason == "stop"
    assert last.eval_count == full.eval_count and (last.eval_count or 0) > 0
    assert "".join(p.message.content or "" for p in parts) == full.message.content


def test_generate_list_ps_show(client: ollama.Client) -> None:
    out = client.generate(model="llama3.1:8b", prompt="Why is the sky blue?")
    assert out.done and out.response and out.context
    assert [m.model for m in client.list().models] == [
        "gemma2:2b",
        "qwen2.5-coder:7b",
        "llama3.1:8b",
        "phi4:14b",
        "auto",
    ]
    assert "llama3.1:8b" in {m.model for m in client.ps().models}
    shown = client.show("llama3.1:8b")
    assert shown.modelinfo is not None and shown.modelinfo["sim.context_length"] == 8192
    assert client.show("auto").details is not None


def test_unknown_model_raises_404(client: ollama.Client, live: Stack) -> None:
    with pytest.raises(ollama.ResponseError) as err:
        client.chat(model="nope:1b", messages=MESSAGES)
    assert err.value.status_code == 404 and err.value.error.startswith("model 'nope:1b' is not installed on ")
    assert "`ollama pull nope:1b` or `swarm models --ensure`" in err.value.error
    with pytest.raises(ollama.ResponseError) as err2:
        list(client.generate(model="nope:1b", prompt="x", stream=True))
    assert err2.value.status_code == 404  # the error comes before the first byte, with its real status
    with pytest.raises(ollama.ResponseError) as err3:
        client.show("nope:1b")
    assert err3.value.status_code == 404


@pytest.mark.anyio
async def test_async_client_and_embed(live: Stack) -> None:
    aclient = ollama.AsyncClient(host=live.router_url)
    parts = [p async for p in await aclient.chat(model="gemma2:2b", messages=MESSAGES, stream=True)]
    assert parts[-1].done and (parts[-1].prompt_eval_count or 0) > 0
    emb = await aclient.embed(model="gemma2:2b", input=["a", "b"])
    assert len(emb.embeddings) == 2 and len(emb.embeddings[0]) == 64


def test_legacy_embeddings_endpoint(live: Stack) -> None:
    client = ollama.Client(host=live.router_url)
    legacy = client.embeddings(model="gemma2:2b", prompt="a")  # the deprecated /api/embeddings
    assert list(legacy.embedding) == list(client.embed(model="gemma2:2b", input="a").embeddings[0])
    bad = httpx.post(live.router_url + "/api/embeddings", json={"model": "gemma2:2b", "prompt": ["a", "b"]})
    assert bad.status_code == 400 and "prompt" in bad.json()["error"]
    missing = httpx.post(live.router_url + "/api/embeddings", json={"model": "nope:1b", "prompt": "a"})
    assert missing.status_code == 404


def test_auto_on_native_chat(live: Stack) -> None:
    code = {"role": "user", "content": "Write a Python function that parses a CSV file and returns the rows"}
    resp = httpx.post(live.router_url + "/api/chat", json={"model": "auto", "messages": [code], "stream": False})
    assert resp.status_code == 200
    assert resp.headers["x-swarm-routed-model"] == "qwen2.5-coder:7b"
    assert resp.json()["model"] == "qwen2.5-coder:7b"


def test_liveness_and_version(live: Stack) -> None:
    assert httpx.head(live.router_url + "/").status_code == 200
    root = httpx.get(live.router_url + "/")
    assert root.text == "Ollama is running" and root.headers["content-type"].startswith("text/plain")
    assert httpx.get(live.router_url + "/api/version").json() == {"version": "0.0.0-sim"}
    assert httpx.head(live.sim_url + "/").status_code == 200


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "missing request body"), (b'{"messages": []}', "model is required"), (b"[1]", "JSON object")],
)
def test_invalid_bodies_are_ollama_shaped_400(live: Stack, content: bytes, message: str) -> None:
    resp = httpx.post(live.router_url + "/api/chat", content=content)
    assert resp.status_code == 400
    assert set(resp.json()) == {"error"} and message in resp.json()["error"]


def test_management_needs_the_admin_key(live: Stack) -> None:
    denied = httpx.post(live.router_url + "/api/pull", json={"model": "gemma2:2b"})
    assert denied.status_code == 403 and "admin key" in denied.json()["error"]
    # The admin's pull is forwarded raw to the tenant's Ollama (here the sim server), streamed back.
    pulled = httpx.post(live.router_url + "/api/pull", json={"model": "gemma2:2b"}, headers=ADMIN)
    assert pulled.status_code == 200
    assert pulled.text.splitlines()[-1] == '{"status":"success"}'
    missing = httpx.post(live.router_url + "/api/pull", json={"model": "nope:1b", "stream": False}, headers=ADMIN)
    # Ollama's own body, relayed; its 500 is a bad gateway for the router's caller
    assert missing.status_code == 502 and missing.json() == {"error": "pull model manifest: file does not exist"}
    # A delete through the proxy re-reads the installed models: the model is gone at once, back after a pull.
    deleted = httpx.request("DELETE", live.router_url + "/api/delete", json={"model": "gemma2:2b"}, headers=ADMIN)
    assert deleted.status_code == 200
    gone = httpx.post(live.router_url + "/api/chat", json={"model": "gemma2:2b", "messages": MESSAGES, "stream": False})
    assert gone.status_code == 404 and "`ollama pull gemma2:2b`" in gone.json()["error"]
    again = httpx.request("DELETE", live.router_url + "/api/delete", json={"model": "gemma2:2b"}, headers=ADMIN)
    assert again.status_code == 404
    assert httpx.post(live.router_url + "/api/pull", json={"model": "gemma2:2b"}, headers=ADMIN).status_code == 200
    back = httpx.post(live.router_url + "/api/chat", json={"model": "gemma2:2b", "messages": MESSAGES, "stream": False})
    assert back.status_code == 200


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str, str]]:
    """A router with two keyed tenants (one with a 1-token budget), created through the admin API."""
    with stack(tmp_path_factory.mktemp("keyed"), admin_key=ADMIN_KEY) as s:
        made = []
        for name, budget in (("alice", None), ("bob", 1)):
            resp = httpx.post(
                s.router_url + "/admin/tenants", json={"name": name, "token_budget": budget}, headers=ADMIN
            )
            assert resp.status_code == 201, resp.text
            made.append(resp.json()["api_key"])
        yield s, made[0], made[1]


def test_missing_or_wrong_key_is_401_in_each_shape(keyed: tuple[Stack, str, str]) -> None:
    s, alice, _ = keyed
    body = {"model": "gemma2:2b", "messages": MESSAGES, "stream": False}
    assert httpx.post(s.router_url + "/api/chat", json=body).status_code == 401
    wrong = httpx.post(s.router_url + "/api/chat", json=body, headers={"Authorization": "Bearer sk-wrong"})
    assert wrong.status_code == 401 and wrong.json() == {"error": "invalid API key"}
    v1 = openai_error(s.router_url, None)
    assert v1.status_code == 401 and v1.json()["error"]["type"] == "authentication_error"
    ok = httpx.post(s.router_url + "/api/chat", json=body, headers={"Authorization": f"Bearer {alice}"})
    assert ok.status_code == 200 and ok.json()["done"] is True


def openai_error(url: str, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(url + "/v1/chat/completions", json={"model": "gemma2:2b", "messages": MESSAGES}, headers=headers)


def test_budget_exhaustion_is_429(keyed: tuple[Stack, str, str]) -> None:
    s, _, bob = keyed
    first = openai_error(s.router_url, bob)
    assert first.status_code == 200  # under budget before the call; the call's tokens then exhaust it
    second = openai_error(s.router_url, bob)
    assert second.status_code == 429 and second.headers["x-should-retry"] == "false"
    assert "token budget exhausted for tenant 'bob'" in second.json()["error"]["message"]
    native = httpx.post(
        s.router_url + "/api/generate",
        json={"model": "gemma2:2b", "prompt": "hi"},
        headers={"Authorization": f"Bearer {bob}"},
    )
    assert native.status_code == 429 and "budget" in native.json()["error"]
    time.sleep(0.4)  # usage is written to the DB in batches
    me = httpx.get(s.router_url + "/tenants/me", headers={"Authorization": f"Bearer {bob}"}).json()
    assert me["usage"]["tokens_used"] == first.json()["usage"]["total_tokens"]


def _refs(s: Stack, model: str) -> int:
    slot = s.sim.memory._slots.get(model)
    return 0 if slot is None else slot.refs


def _released_at(s: Stack, model: str) -> float:
    slot = s.sim.memory._slots[model]
    return slot.last_used if slot.refs == 0 else float("inf")


@pytest.fixture(scope="module")
def slow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Realistic sim timings (decoding the answers below takes ~0.9-1.1 s), so a client can leave mid-way."""
    with stack(tmp_path_factory.mktemp("slow")) as s:
        s.sim.time_scale = 1.0
        yield s


def test_client_disconnect_cancels_upstream_stream(slow: Stack) -> None:
    prompt = {"model": "gemma2:2b", "messages": [{"role": "user", "content": "tell me a long story"}]}
    with httpx.stream("POST", slow.router_url + "/api/chat", json=prompt) as resp:
        first = next(resp.iter_lines())
        left = time.time()
        assert '"done":false' in first
    # Five more pieces of ~0.15 s each were still to come: the sim must have stopped long before.
    _wait_until(lambda: _released_at(slow, "gemma2:2b") < left + 0.3, 0.5)


def test_client_disconnect_cancels_upstream_call(slow: Stack) -> None:
    body = {"model": "gemma2:2b", "messages": [{"role": "user", "content": "another long story"}], "stream": False}
    httpx.post(slow.router_url + "/api/chat", json={**body, "messages": MESSAGES})  # warm: model loaded
    sent = time.time()
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(slow.router_url + "/api/chat", json=body, timeout=httpx.Timeout(5.0, read=0.15))
    # The answer takes ~1.1 s to decode; the router cancels it as soon as the client has gone.
    _wait_until(lambda: _released_at(slow, "gemma2:2b") < sent + 0.6, 0.7)


def _wait_until(check: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "upstream work was not cancelled in time"
        time.sleep(0.01)
