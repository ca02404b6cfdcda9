"""Proxied calls keep to the tenant's budgets: an explicit model larger than the tenant's GPU is refused in each
API's shape, a token count leases nothing, a charge reaches every cached copy of the tenant, a client that leaves
an unanswered call is charged its prompt estimate, and an output limit Ollama would ignore is forwarded so it holds."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import ollama
import openai
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from app.cli.sim import build_sim_app
from app.main import create_app
from tests.api.conftest import ADMIN_KEY, router_settings, serve, sim_backend

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
ASK = [{"role": "user", "content": "Say something about budgets."}]


def new_tenant(url: str, name: str, **extra: Any) -> str:
    resp = httpx.post(f"{url}/admin/tenants", headers=ADMIN, json={"name": name, **extra})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["api_key"])


def usage(url: str, key: str) -> dict[str, Any]:
    resp = httpx.get(f"{url}/tenants/me", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    return resp.json()["usage"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, Any]]:
    """(router URL, sim URL, the router app) in front of a paced sim served as Ollama over HTTP."""
    sim = sim_backend(time_scale=1.0)
    with serve(build_sim_app(sim)) as sim_url:
        cfg = router_settings(tmp_path_factory.mktemp("proxy-holes"), ollama_base_url=sim_url, admin_key=ADMIN_KEY)
        app = create_app(cfg)
        with serve(app) as url:
            yield url, sim_url, app


# ---- an explicit model beyond the tenant's GPU ---------------------------------------------------------------


def test_explicit_model_larger_than_the_tenants_gpu_is_refused(stack: tuple[str, str, Any]) -> None:
    url, _, _ = stack
    key = new_tenant(url, "small-gpu", gpu_vram_gb=3)
    with pytest.raises(ollama.ResponseError) as native:
        ollama.Client(host=url, headers={"Authorization": f"Bearer {key}"}).chat(model="qwen2.5-coder:7b", messages=ASK)
    assert native.value.status_code == 422 and "3 GB" in native.value.error
    oai = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    with pytest.raises(openai.UnprocessableEntityError) as compat:
        oai.chat.completions.create(model="llama3.1:8b", messages=ASK)  # type: ignore[arg-type]
    assert "3 GB" in compat.value.message and compat.value.code == "exceeds_tenant_config"
    claude = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)
    with pytest.raises(anthropic.UnprocessableEntityError) as messages:
        claude.messages.create(model="phi4:14b", max_tokens=20, messages=ASK)  # type: ignore[arg-type]
    assert "3 GB" in messages.value.message
    reply = ollama.Client(host=url, headers={"Authorization": f"Bearer {key}"}).chat(model="gemma2:2b", messages=ASK)
    assert reply.message.content  # a model within the limit is served


# ---- a token count leases nothing ----------------------------------------------------------------------------


def test_count_tokens_does_not_load_the_model(stack: tuple[str, str, Any]) -> None:
    """The GPU's scheduler is not asked for a slot: it would make the model resident (evicting others if need be)
    for a call that never runs."""
    url, sim_url, app = stack
    key = new_tenant(url, "counter")
    claude = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0)
    scheduler = app.state.runtime.pool.default.scheduler
    before = {m["name"] for m in httpx.get(f"{sim_url}/api/ps").json()["models"]}
    assert "phi4:14b" not in before and "phi4:14b" not in scheduler.resident
    emitted = scheduler.emitted
    count = claude.messages.count_tokens(model="phi4:14b", messages=ASK)  # type: ignore[arg-type]
    assert count.input_tokens > 0
    time.sleep(0.3)
    assert scheduler.emitted == emitted and "phi4:14b" not in scheduler.resident  # no load, no eviction
    after = {m["name"] for m in httpx.get(f"{sim_url}/api/ps").json()["models"]}
    assert after == before
    assert usage(url, key)["tokens_used"] == 0


# ---- a client that leaves an unanswered call ------------------------------------------------------------------


def test_client_leaving_an_unanswered_call_is_charged_its_prompt(stack: tuple[str, str, Any]) -> None:
    url, _, _ = stack
    key = new_tenant(url, "leaver", token_budget=10**6)
    body = {"model": "phi4:14b", "messages": ASK, "stream": False}  # a load of seconds before any answer
    raw = json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{url}/api/chat", content=raw, headers=headers, timeout=httpx.Timeout(30, read=0.5))
    deadline = time.monotonic() + 10
    while (now := usage(url, key))["tokens_reserved"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert now["tokens_reserved"] == 0
    assert now["tokens_used"] == len(raw) // 4  # the prompt estimate: the request body at four bytes a token


# ---- a charge reaches every cached copy of the tenant ------------------------------------------------------------


def test_charge_of_a_call_in_flight_reaches_a_refreshed_cache(stack: tuple[str, str, Any]) -> None:
    """The key cache replaces the tenant object while a call runs: the call's charge must reach the new copy too,
    or the next call's budget check reads a tenant that spent nothing."""
    url, _, app = stack
    cache = app.state.runtime.tenants
    key = new_tenant(url, "refreshed", token_budget=30)
    client = ollama.Client(host=url, headers={"Authorization": f"Bearer {key}"})
    cache.ttl_s = 0.0  # the call in flight is admitted with a copy that expires at once
    done: list[int] = []
    slow = threading.Thread(
        target=lambda: done.append(
            int(client.chat(model="phi4:14b", messages=ASK, options={"num_predict": 40}).eval_count or 0)
        )
    )
    try:
        slow.start()
        deadline = time.monotonic() + 10
        while not usage(url, key)["tokens_reserved"]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        cache.ttl_s = 3600.0
        with pytest.raises(ollama.ResponseError) as held:  # refused on the reservation; the cache now has a new copy
            client.chat(model="gemma2:2b", messages=ASK, options={"num_predict": 5})
        assert held.value.status_code == 429
        slow.join(timeout=60)
        assert done and usage(url, key)["tokens_used"] >= 30
        with pytest.raises(ollama.ResponseError) as spent:  # the new copy knows the budget is spent
            client.chat(model="gemma2:2b", messages=ASK, options={"num_predict": 5})
        assert spent.value.status_code == 429 and "token budget exhausted" in spent.value.error
    finally:
        cache.ttl_s = 5.0
        slow.join(timeout=60)


# ---- max_completion_tokens, which Ollama's /v1 does not read --------------------------------------------------


class OllamaLike:
    """Ollama's /v1/chat/completions as far as output limits go: only `max_tokens` is read (as num_predict, 0 or
    absent = no limit, here 2,000 tokens)."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    async def chat(self, request: Request) -> Response:
        raw = await request.body()
        self.bodies.append(raw)
        body = json.loads(raw)
        limit = body.get("max_tokens")
        n = limit if isinstance(limit, int) and limit > 0 else 2000
        msg = {"role": "assistant", "content": "word " * n}
        usage = {"prompt_tokens": 8, "completion_tokens": n, "total_tokens": 8 + n}
        choice = {"index": 0, "message": msg, "finish_reason": "length"}
        return JSONResponse({"id": "c", "object": "chat.completion", "model": body["model"], "created": 0,
                             "choices": [choice], "usage": usage})  # fmt: skip

    async def tags(self, request: Request) -> Response:
        return JSONResponse({"models": [{"name": "gemma2:2b", "model": "gemma2:2b", "size": 1}]})

    async def ps(self, request: Request) -> Response:
        return JSONResponse({"models": []})

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/api/tags", self.tags, methods=["GET"]),
                Route("/api/ps", self.ps, methods=["GET"]),
            ]
        )


def test_max_completion_tokens_is_forwarded_as_max_tokens(tmp_path: Any) -> None:
    fake = OllamaLike()
    with serve(fake.app()) as fake_url:
        cfg = router_settings(tmp_path, ollama_base_url=fake_url, admin_key=ADMIN_KEY)
        with serve(create_app(cfg)) as url:
            key = new_tenant(url, "limited", token_budget=1000)
            oai = openai.OpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
            served = 0
            for _ in range(20):
                try:
                    reply = oai.chat.completions.create(
                        model="gemma2:2b",
                        messages=ASK,  # type: ignore[arg-type]
                        max_completion_tokens=20,
                    )
                except openai.RateLimitError:
                    continue
                assert reply.usage is not None and reply.usage.completion_tokens == 20
                served += 1
            assert served == 20  # 20 calls of 28 tokens fit a budget of 1,000
            assert usage(url, key)["tokens_used"] == 20 * 28
            sent = fake.bodies[-1]
            assert sent.endswith(b',"max_tokens":20}')
            as_sent = json.loads(sent)
            assert as_sent["max_completion_tokens"] == 20 and as_sent["max_tokens"] == 20
            raw = b'{"model": "gemma2:2b", "messages": [{"role": "user", "content": "hi"}], "max_completion_tokens": 7}'
            resp = httpx.post(f"{url}/v1/chat/completions", content=raw, headers={"Authorization": f"Bearer {key}"})
            assert resp.status_code == 200
            assert fake.bodies[-1] == raw[:-1] + b',"max_tokens":7}'  # every other byte as the client sent it
