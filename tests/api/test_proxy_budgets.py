"""Budgets hold on the proxies: every proxied call reserves an estimate at admission (so concurrent calls see each
other and overshoot stays within one request's tokens), a refusal is a 429 in the caller's API shape, and the
reservation settles to the real usage however the call ends (done, failed, cut, client gone)."""

from __future__ import annotations

import asyncio
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
from fastapi.testclient import TestClient

from app.cli.sim import build_sim_app
from app.core.settings import Settings
from app.main import create_app
from tests.api.conftest import ADMIN_KEY, router_settings, serve, sim_backend

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
FAST, SLOW = "gemma2:2b", "phi4:14b"  # 60 and 15 tokens/s on the paced sim (plus a 0.6 / 2.4 s load)
ASK = [{"role": "user", "content": "Say something about budgets."}]
LIMIT = 150  # above what the sim answers (at most 60 words), so each call's reservation covers its real usage


@pytest.fixture(scope="module")
def router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The router in front of a paced sim served as Ollama over HTTP (calls take real time and overlap)."""
    sim = sim_backend(time_scale=1.0)
    with serve(build_sim_app(sim)) as sim_url:
        cfg = router_settings(tmp_path_factory.mktemp("proxy-budget"), ollama_base_url=sim_url, admin_key=ADMIN_KEY)
        with serve(create_app(cfg)) as url:
            yield url


def new_tenant(url: str, name: str, budget: int) -> str:
    resp = httpx.post(f"{url}/admin/tenants", headers=ADMIN, json={"name": name, "token_budget": budget})
    assert resp.status_code == 201, resp.text
    return str(resp.json()["api_key"])


def usage(url: str, key: str) -> dict[str, Any]:
    resp = httpx.get(f"{url}/tenants/me", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    return resp.json()["usage"]  # type: ignore[no-any-return]


def settled(url: str, key: str, timeout_s: float = 30.0) -> dict[str, Any]:
    """The tenant's usage once nothing is reserved any more (calls cut by a client end a little later)."""
    deadline = time.monotonic() + timeout_s
    while (now := usage(url, key))["tokens_reserved"] and time.monotonic() < deadline:
        time.sleep(0.05)
    return now


# ---- concurrent calls against a small budget -------------------------------------------------------------


async def _ollama_call(url: str, key: str) -> tuple[int, int]:
    client = ollama.AsyncClient(host=url, headers={"Authorization": f"Bearer {key}"})
    try:
        reply = await client.chat(model=FAST, messages=ASK, options={"num_predict": LIMIT})
    except ollama.ResponseError as exc:
        assert exc.status_code == 429 and "token budget exhausted" in exc.error, exc.error
        return 429, 0
    return 200, int(reply.prompt_eval_count or 0) + int(reply.eval_count or 0)


async def _openai_call(url: str, key: str) -> tuple[int, int]:
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=key, max_retries=0)
    try:
        reply = await client.chat.completions.create(model=FAST, messages=ASK, max_tokens=LIMIT)  # type: ignore[arg-type]
    except openai.RateLimitError as exc:
        assert exc.status_code == 429 and "token budget exhausted" in exc.message, exc.message
        return 429, 0
    assert reply.usage is not None
    return 200, reply.usage.total_tokens


async def _anthropic_call(url: str, key: str) -> tuple[int, int]:
    client = anthropic.AsyncAnthropic(base_url=url, api_key=key, max_retries=0)
    try:
        reply = await client.messages.create(model=FAST, max_tokens=LIMIT, messages=ASK)  # type: ignore[arg-type]
    except anthropic.RateLimitError as exc:
        assert exc.status_code == 429 and "token budget exhausted" in exc.message, exc.message
        return 429, 0
    return 200, reply.usage.input_tokens + reply.usage.output_tokens


CALLERS = {"ollama": _ollama_call, "openai": _openai_call, "anthropic": _anthropic_call}


@pytest.mark.parametrize("family", list(CALLERS))
def test_concurrent_calls_overshoot_by_at_most_one_request(router: str, family: str) -> None:
    """Twenty calls at once from a tenant with 300 tokens: without reservations all are admitted (budget spent
    several times over); with them a few run, the rest get 429 in the client's own shape."""
    budget = 300
    key = new_tenant(router, f"burst-{family}", budget)

    async def burst() -> list[tuple[int, int]]:
        return list(await asyncio.gather(*(CALLERS[family](router, key) for _ in range(20))))

    results = asyncio.run(burst())
    served = [tokens for status, tokens in results if status == 200]
    assert served and len(served) < len(results)  # some admitted, the others refused
    now = settled(router, key)
    assert now["tokens_reserved"] == 0
    assert now["tokens_used"] == sum(served)  # charged exactly the real usage
    assert now["tokens_used"] - budget < max(served)  # overshoot within one request's tokens


# ---- a reservation held by a running call refuses the next, in every API's shape ---------------------------


def _hold(url: str, key: str) -> None:
    """A slow streamed call that holds its reservation for seconds."""
    body = {"model": SLOW, "messages": ASK, "options": {"num_predict": LIMIT}}
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.stream("POST", f"{url}/api/chat", json=body, headers=auth, timeout=60) as resp:
        for _ in resp.iter_raw():  # read to the end: the call holds its reservation until then
            pass


def test_a_held_reservation_refuses_other_calls_in_their_api_shape(router: str) -> None:
    key = new_tenant(router, "held", 100)
    auth = {"Authorization": f"Bearer {key}"}
    holder = threading.Thread(target=_hold, args=(router, key))
    holder.start()
    try:
        deadline = time.monotonic() + 20
        while not usage(router, key)["tokens_reserved"]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        reserved = usage(router, key)["tokens_reserved"]
        assert reserved >= LIMIT and usage(router, key)["tokens_used"] == 0
        named = f"token budget exhausted for tenant 'held': used 0 (+{reserved} reserved by running work) of 100"

        with pytest.raises(ollama.ResponseError) as native:
            ollama.Client(host=router, headers=auth).generate(model=FAST, prompt="hi")
        assert native.value.status_code == 429 and native.value.error == named
        with pytest.raises(openai.RateLimitError) as oai:
            openai.OpenAI(base_url=f"{router}/v1", api_key=key, max_retries=0).chat.completions.create(
                model=FAST,
                messages=ASK,  # type: ignore[arg-type]
            )
        assert oai.value.body["message"] == named and oai.value.body["type"] == "insufficient_quota"  # type: ignore[index]
        with pytest.raises(anthropic.RateLimitError) as anth:
            anthropic.Anthropic(base_url=router, api_key=key, max_retries=0).messages.create(
                model=FAST,
                max_tokens=10,
                messages=ASK,  # type: ignore[arg-type]
            )
        assert anth.value.body == {"type": "error", "error": {"type": "rate_limit_error", "message": named}}
        for path, body in [
            ("/api/embed", {"model": FAST, "input": "x"}),
            ("/v1/embeddings", {"model": FAST, "input": "x"}),
            ("/v1/completions", {"model": FAST, "prompt": "x"}),
            ("/v1/responses", {"model": FAST, "input": "x"}),
        ]:
            resp = httpx.post(f"{router}{path}", json=body, headers=auth, timeout=30)
            assert resp.status_code == 429 and named in resp.text, (path, resp.text)
    finally:
        holder.join(timeout=60)
    now = settled(router, key)
    assert now["tokens_reserved"] == 0 and 0 < now["tokens_used"] <= reserved  # settled to the real usage


# ---- reservations never leak -------------------------------------------------------------------------------


def _cut_streams(url: str, key: str) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    cut = [
        ("/api/chat", {"model": FAST, "messages": ASK}),
        ("/api/generate", {"model": FAST, "prompt": "hello"}),
        ("/v1/chat/completions", {"model": FAST, "messages": ASK, "stream": True}),
        ("/v1/completions", {"model": FAST, "prompt": "hello", "stream": True}),
        ("/v1/responses", {"model": FAST, "input": "hello", "stream": True}),
        ("/v1/messages", {"model": FAST, "max_tokens": 50, "messages": ASK, "stream": True}),
    ]
    for path, body in cut:  # the client hangs up after the first bytes of the answer
        with httpx.stream("POST", f"{url}{path}", json=body, headers=auth, timeout=60) as resp:
            assert resp.status_code == 200, path
            next(resp.iter_raw())


def _timeouts(url: str, key: str) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    for path, body in [
        ("/api/chat", {"model": SLOW, "messages": ASK, "stream": False}),
        ("/v1/chat/completions", {"model": SLOW, "messages": ASK}),
        ("/v1/messages", {"model": SLOW, "max_tokens": 50, "messages": ASK}),
    ]:  # the client gives up while the model loads or decodes
        with pytest.raises(httpx.TimeoutException):
            httpx.post(f"{url}{path}", json=body, headers=auth, timeout=0.3)


def _failures(url: str, key: str) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    for path, body in [  # admitted, then refused upstream: a model without tool calling
        ("/api/chat", {"model": FAST, "messages": ASK, "tools": tools, "stream": False}),
        ("/api/chat", {"model": FAST, "messages": ASK, "tools": tools}),
        ("/v1/chat/completions", {"model": FAST, "messages": ASK, "tools": tools}),
    ]:
        assert httpx.post(f"{url}{path}", json=body, headers=auth, timeout=60).status_code == 400, path
    count = {"model": FAST, "messages": ASK}  # answered by the router: nothing runs, nothing is held
    assert httpx.post(f"{url}/v1/messages/count_tokens", json=count, headers=auth, timeout=30).status_code == 200


def test_reservations_settle_after_cancelled_and_failed_calls(router: str) -> None:
    key = new_tenant(router, "leaky", 10**9)
    for _ in range(3):
        _cut_streams(router, key)
        _timeouts(router, key)
        _failures(router, key)
    now = settled(router, key)
    assert now["tokens_reserved"] == 0  # every reservation was given back
    assert now["tokens_used"] > 0  # the cut streams were charged what they relayed
    ok = httpx.post(
        f"{router}/api/chat",
        json={"model": FAST, "messages": ASK, "stream": False},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert ok.status_code == 200  # and the tenant (and the GPU's slots) still serve


@pytest.mark.parametrize(
    ("path", "body", "limit"),
    [
        ("/api/chat", {"model": SLOW, "messages": ASK, "options": {"num_predict": 77}}, 77),
        ("/v1/chat/completions", {"model": SLOW, "messages": ASK, "stream": True, "max_tokens": 78}, 78),
        ("/v1/chat/completions", {"model": SLOW, "messages": ASK, "stream": True, "max_completion_tokens": 79}, 79),
        ("/v1/completions", {"model": SLOW, "prompt": "hello", "stream": True, "max_tokens": 80}, 80),
        ("/v1/responses", {"model": SLOW, "input": "hello", "stream": True, "max_output_tokens": 81}, 81),
        ("/v1/messages", {"model": SLOW, "messages": ASK, "stream": True, "max_tokens": 82}, 82),
        ("/api/generate", {"model": SLOW, "prompt": "hello"}, 1024),  # no limit: SWARM_PROXY_RESERVE_TOKENS
    ],
)
def test_the_reservation_is_the_prompt_plus_the_apis_output_limit(
    router: str, path: str, body: dict[str, Any], limit: int
) -> None:
    key = new_tenant(router, f"estimate-{limit}", 10**9)
    raw = json.dumps(body).encode()
    headers = {"Authorization": f"Bearer {key}", "content-type": "application/json"}
    with httpx.stream("POST", f"{router}{path}", content=raw, headers=headers, timeout=60) as resp:
        assert resp.status_code == 200
        assert usage(router, key)["tokens_reserved"] == len(raw) // 4 + limit  # while the answer streams
    assert settled(router, key)["tokens_reserved"] == 0


def test_a_tenant_read_again_counts_tokens_not_written_yet(settings: Settings) -> None:
    """The tenant cache reads a tenant from the database again every few seconds; proxied usage is written in
    batches. A fresh read counts the charges still waiting for their batch, so the budget check never forgets
    them (here: no cache at all, and a batch that is never written during the test)."""
    with TestClient(create_app(settings, backend=sim_backend(), admin_key=ADMIN_KEY)) as c:
        runtime = c.app.state.runtime  # type: ignore[attr-defined]
        runtime.tenants.ttl_s = 0.0
        runtime.usage.flush_delay_s = 3600.0
        key = c.post("/admin/tenants", headers=ADMIN, json={"name": "fresh", "token_budget": 100}).json()["api_key"]
        body = {"model": FAST, "messages": ASK, "stream": False, "options": {"num_predict": LIMIT}}
        auth = {"Authorization": f"Bearer {key}"}
        statuses = [c.post("/api/chat", json=body, headers=auth).status_code for _ in range(4)]
        assert statuses == [200, 200, 429, 429]  # about 90 tokens a call: the third sees twice that of 100 spent
        me = c.get("/tenants/me", headers=auth).json()
        assert me["usage"]["tokens_used"] > 100
        assert runtime.repo.get_tenant(me["id"]).tokens_used == 0  # none of it written yet


def test_count_tokens_gives_its_gpu_slot_and_reservation_back(router: str) -> None:
    """/v1/messages/count_tokens is admitted like any call but runs nothing: it holds neither the model's slot
    (which filled up after a few counts, and the next calls waited for ever) nor a reservation."""
    key = new_tenant(router, "counter", 10**9)
    client = anthropic.Anthropic(base_url=router, api_key=key, max_retries=0, timeout=10)
    counts = [client.messages.count_tokens(model=FAST, messages=ASK).input_tokens for _ in range(12)]  # type: ignore[arg-type]
    assert len(set(counts)) == 1 and counts[0] > 0
    assert usage(router, key)["tokens_reserved"] == 0
