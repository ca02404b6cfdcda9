"""A hostile upstream never produces a 500 or a stuck service: huge counts (a 502, the job failed, the service
restarts), endless response heads (refused after a bounded read), non-object /v1 answers (502), usage missing or
invalid (charged by counting), CRLF-framed SSE (split and metered), bad /api/tags rows (skipped and reported),
and relayed admin bodies with lone surrogates (400)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.backends.transport import TransportKind, make_transport
from app.main import create_app
from tests.api.conftest import ADMIN_KEY, router_settings, serve
from tests.api.hostile_ollama import MODES, TEXT, WORDS, HostileOllama

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
ASK = [{"role": "user", "content": "hi"}]
JOB = {"subtasks": [{"id": "a", "task_type": "code", "description": "write hello world"}], "routing": "greedy"}
GOOD_TAG = {"name": "gemma2:2b", "model": "gemma2:2b", "size": 1_600_000_000}
ESTIMATE = -(-len(TEXT) // 4)  # a whole answer without usage: its text at four characters a token
V1 = {
    "/v1/chat/completions": {"messages": ASK},
    "/v1/completions": {"prompt": "hi"},
    "/v1/responses": {"input": "hi"},
    "/v1/messages": {"messages": ASK, "max_tokens": 50},
}


@dataclass
class Hostile:
    fake: HostileOllama
    url: str
    fake_url: str
    root: Path


@contextmanager
def hostile_stack(root: Path, **over: Any) -> Iterator[Hostile]:
    fake = HostileOllama()
    fake.tags = [GOOD_TAG, *({"name": n, "model": n, "size": 1_000_000_000} for n in MODES)]
    with fake.serve() as fake_url:
        cfg = router_settings(root, ollama_base_url=fake_url, admin_key=ADMIN_KEY, backend_deadline_s=10.0, **over)
        with serve(create_app(cfg)) as url:
            yield Hostile(fake, url, fake_url, root)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hostile]:
    with hostile_stack(tmp_path_factory.mktemp("hostile")) as h:
        yield h


def new_key(url: str) -> dict[str, str]:
    name = f"t{time.monotonic_ns()}"
    resp = httpx.post(f"{url}/admin/tenants", headers=ADMIN, json={"name": name, "token_budget": 10**9})
    assert resp.status_code == 201, resp.text
    return {"Authorization": f"Bearer {resp.json()['api_key']}"}


def charged(url: str, key: dict[str, str]) -> int:
    """The tenant's tokens once nothing is reserved any more."""
    deadline = time.monotonic() + 20
    while True:
        now = httpx.get(f"{url}/tenants/me", headers=key, timeout=30).json()["usage"]
        if not now["tokens_reserved"] or time.monotonic() > deadline:
            return int(now["tokens_used"])
        time.sleep(0.05)


# ---- 1. huge counts -----------------------------------------------------------------------------------


def test_huge_counts_are_a_bad_gateway_and_a_failed_job(hostile: Hostile) -> None:
    key = new_key(hostile.url)
    with httpx.Client(base_url=hostile.url, timeout=30, headers=key) as c:
        for model in ("bigint", "floatusage"):
            resp = c.post("/api/chat", json={"model": model, "messages": ASK, "stream": False})
            assert resp.status_code == 502 and "non-count prompt_eval_count" in resp.json()["error"], resp.text
            resp = c.post("/api/generate", json={"model": model, "prompt": "hi"})
            last = json.loads(resp.text.strip().splitlines()[-1])
            assert resp.status_code == 200 and "non-count" in last["error"], resp.text
        hostile.fake.default = "bigint"
        try:
            job = c.post("/jobs", params={"wait": "true"}, json=JOB)
        finally:
            hostile.fake.default = "ok"
        assert job.status_code == 200, job.text
        assert job.json()["status"] == "failed" and "non-count" in job.json()["error"], job.json()
        assert c.get(f"/jobs/{job.json()['id']}").json()["status"] == "failed"
        # usage the /v1 relays read as nonsense is charged by counting, never a number the database refuses
        before = charged(hostile.url, key)
        resp = c.post("/v1/chat/completions", json={"model": "bigint", "messages": ASK})
        assert resp.status_code == 200, resp.text
        assert charged(hostile.url, key) - before == ESTIMATE
        assert c.post("/api/chat", json={"model": "ok", "messages": ASK, "stream": False}).status_code == 200


def test_a_bad_usage_journal_line_never_blocks_start_up(tmp_path: Path) -> None:
    with hostile_stack(tmp_path) as h:
        key = new_key(h.url)
        tenant_id = httpx.get(f"{h.url}/tenants/me", headers=key).json()["id"]
        httpx.post(f"{h.url}/v1/chat/completions", headers=key, json={"model": "bigint", "messages": ASK})
    # a journal a dead process left, with a count no database column holds and a line that is no charge at all
    journal = tmp_path / "data" / "usage" / "usage-999999999-dead.log"
    journal.write_text(f"{tenant_id} {10**30}\n{tenant_id} lots\n{tenant_id} 7\n")
    with hostile_stack(tmp_path) as h:
        assert httpx.get(f"{h.url}/healthz").status_code == 200
        assert charged(h.url, key) == ESTIMATE + 7  # the good line is replayed, the bad ones skipped
    assert not journal.exists()


# ---- 2. endless response heads ------------------------------------------------------------------------


@pytest.mark.parametrize("model", ["manyheaders", "hugeheader"])
@pytest.mark.parametrize("kind", ["lean", "httpx"])  # httpx: h11 refuses a head over 16 KiB on its own
def test_endless_response_heads_are_refused(kind: TransportKind, model: str) -> None:
    import asyncio

    from app.backends.ollama import OllamaBackend
    from app.core.errors import BadBackendResponse

    fake = HostileOllama()
    with fake.serve() as fake_url:
        backend = OllamaBackend(make_transport(kind, fake_url, deadline_s=15.0))

        async def call() -> None:
            try:
                await backend.chat({"model": model, "messages": ASK, "stream": False})
            finally:
                await backend.aclose()

        started = time.monotonic()
        with pytest.raises(BadBackendResponse, match=r"header|head exceeds|Receive buffer too long"):
            asyncio.run(call())
        assert time.monotonic() - started < 5
        # the client hung up at once: what the fake wrote is what the socket buffers took (the old lean client
        # read on for the whole deadline, hundreds of megabytes)
        assert fake.head_bytes_sent < 64 * 1024 * 1024


def test_endless_response_headers_are_a_502_through_the_router(hostile: Hostile) -> None:
    body = {"model": "manyheaders", "messages": ASK}
    resp = httpx.post(f"{hostile.url}/api/chat", headers=ADMIN, json=body, timeout=30)
    assert resp.status_code == 502 and "header" in resp.json()["error"], resp.text


# ---- 3. /v1 relays: non-object answers and usage fallback -----------------------------------------------


@pytest.mark.parametrize("path", list(V1))
def test_v1_answers_that_are_not_a_json_object_are_a_502(hostile: Hostile, path: str) -> None:
    for model, needle in (("invalid", "invalid JSON"), ("nonobj", "JSON object"), ("deep", "nested")):
        resp = httpx.post(f"{hostile.url}{path}", headers=ADMIN, json={"model": model, **V1[path]}, timeout=30)
        assert resp.status_code == 502, (path, model, resp.text[:200])
        assert needle in resp.json()["error"]["message"], (path, model, resp.text[:200])
    # a stream request answered with one JSON document instead of SSE is checked as a whole answer
    body = {"model": "nonobj", "stream": True, **V1[path]}
    resp = httpx.post(f"{hostile.url}{path}", headers=ADMIN, json=body, timeout=30)
    assert resp.status_code == 502 and "JSON object" in resp.json()["error"]["message"], resp.text[:200]


@pytest.mark.parametrize(
    ("path", "model", "stream", "tokens"),
    [
        ("/v1/chat/completions", "nousage", False, ESTIMATE),
        ("/v1/chat/completions", "strusage", False, ESTIMATE),
        ("/v1/chat/completions", "nanusage", False, ESTIMATE),
        ("/v1/chat/completions", "negusage", False, ESTIMATE),
        ("/v1/completions", "nousage", False, ESTIMATE),
        ("/v1/responses", "nousage", False, ESTIMATE),
        ("/v1/messages", "strusage", False, ESTIMATE),
        ("/v1/chat/completions", "nousage", True, WORDS + 1),  # the data events relayed ([DONE] included)
        ("/v1/chat/completions", "strusage", True, WORDS + 1),
        ("/api/chat", "nousage", False, ESTIMATE),
        ("/api/chat", "nousage", True, WORDS),  # the token lines before the final one
    ],
)
def test_missing_or_invalid_usage_is_charged_by_counting(
    hostile: Hostile, path: str, model: str, stream: bool, tokens: int
) -> None:
    key = new_key(hostile.url)
    body = {"model": model, "stream": stream, **V1.get(path, {"messages": ASK})}
    resp = httpx.post(f"{hostile.url}{path}", headers=key, json=body, timeout=30)
    assert resp.status_code == 200, resp.text
    assert charged(hostile.url, key) == tokens


# ---- 5. CRLF-framed SSE -------------------------------------------------------------------------------


def test_crlf_sse_is_split_metered_and_the_usage_chunk_dropped(hostile: Hostile) -> None:
    key = new_key(hostile.url)
    body = {"model": "crlf", "messages": ASK, "stream": True}
    resp = httpx.post(f"{hostile.url}/v1/chat/completions", headers=key, json=body, timeout=30)
    assert resp.status_code == 200
    assert '"usage"' not in resp.text and resp.text.endswith("data: [DONE]\r\n\r\n"), resp.text
    assert resp.text.count("data: ") == WORDS + 1
    assert charged(hostile.url, key) == 3 + 2  # the usage the upstream reported


def test_sse_meter_accepts_every_blank_line_form() -> None:
    from app.api.compat_relay import SseMeter

    for sep in (b"\n\n", b"\r\n\r\n", b"\r\r", b"\n\r\n"):
        chunk = b'data: {"choices": [{"delta": {"content": "x"}}]}' + sep
        usage = b'data: {"choices": [], "usage": {"prompt_tokens": 4, "completion_tokens": 6}}' + sep
        stream = chunk * 3 + usage + b"data: [DONE]" + sep
        for size in (1, 2, 3, 7, len(stream)):  # every way the pieces may cut the separators
            meter = SseMeter("openai", drop_usage=True, max_event=1024)
            out = b"".join(meter.feed(stream[i : i + size]) for i in range(0, len(stream), size)) + meter.flush()
            assert out == chunk * 3 + b"data: [DONE]" + sep, (sep, size, out)
            assert meter.usage == {"prompt_eval_count": 4, "eval_count": 6}, (sep, size)


# ---- 4. bad /api/tags rows ----------------------------------------------------------------------------

BAD_TAGS = [
    {"name": "nan:1b", "size": float("nan")},
    {"name": "lots:1b", "size": "lots"},
    {"name": "huge:1b", "size": 1e308},
    {"name": 5, "size": 1},
    {"name": "\ud800", "size": 1},
]


def _serves(url: str) -> None:
    with httpx.Client(base_url=url, timeout=30) as c:
        ready = c.get("/readyz")
        assert ready.status_code in (200, 503), ready.text
        skipped = ready.json()["components"]["catalog"]["installed_not_offered"]
        assert len(skipped) == len(BAD_TAGS), skipped
        auto = c.post("/api/chat", json={"model": "auto", "messages": ASK, "stream": False})
        assert auto.status_code == 200, auto.text
        job = c.post("/jobs", params={"wait": "true"}, json=JOB)
        assert job.status_code == 200 and job.json()["status"] == "succeeded", job.text


def test_bad_installed_rows_are_skipped_at_start(tmp_path: Path) -> None:
    fake = HostileOllama()
    fake.tags = [GOOD_TAG, {"name": "extra:1b", "size": 2_000_000_000}, *BAD_TAGS]
    with fake.serve() as fake_url:
        cfg = router_settings(tmp_path, ollama_base_url=fake_url, offer_installed_models=True)
        with serve(create_app(cfg)) as url:
            _serves(url)


def test_bad_installed_rows_while_running_are_skipped(tmp_path: Path) -> None:
    fake = HostileOllama()
    fake.tags = [GOOD_TAG]
    with fake.serve() as fake_url:
        cfg = router_settings(tmp_path, ollama_base_url=fake_url, offer_installed_models=True, catalog_refresh_s=0.2)
        with serve(create_app(cfg)) as url:
            fake.tags = [GOOD_TAG, *BAD_TAGS]
            time.sleep(1.0)  # a few catalog re-reads
            _serves(url)


# ---- 6. relayed admin bodies --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "raw", "field"),
    [
        ("/api/pull", b'{"model": "\\ud800"}', "model"),
        ("/api/push", b'{"model": "a\\udfffb"}', "model"),
        ("/api/copy", b'{"source": "gemma2:2b", "destination": "\\ud800"}', "destination"),
        ("/api/create", b'{"model": "x", "files": {"\\ud800": "sha256:1"}}', "files"),
    ],
)
def test_relayed_admin_bodies_with_lone_surrogates_are_a_400(
    hostile: Hostile, path: str, raw: bytes, field: str
) -> None:
    before = len(hostile.fake.requests)
    headers = {**ADMIN, "Content-Type": "application/json"}
    resp = httpx.post(f"{hostile.url}{path}", headers=headers, content=raw, timeout=30)
    assert resp.status_code == 400 and resp.json()["error"].startswith(field), resp.text
    assert not [p for p, _ in hostile.fake.requests[before:] if p == path]  # never sent upstream


@pytest.mark.parametrize(("output", "expected"), [(20, 20), (0, 1), ("lots", None), (-3, None), (10**30, None)])
def test_anthropic_stream_usage_is_merged_and_a_bad_output_count_voids_it(output: object, expected: int | None) -> None:
    from app.api.compat_relay import SseMeter
    from app.api.usage_counts import with_counts

    start = {"type": "message_start", "message": {"usage": {"input_tokens": 10, "output_tokens": 1}}}
    delta = {"type": "message_delta", "usage": {"output_tokens": output}}
    meter = SseMeter("anthropic", max_event=4096)
    for name, event in (("message_start", start), ("message_delta", delta)):
        meter.feed(f"event: {name}\ndata: {json.dumps(event)}\n\n".encode())
    assert meter.usage == {"prompt_eval_count": 10, "eval_count": expected}
    charged = with_counts(meter.usage, chunks=9)
    assert charged["eval_count"] == (expected if expected is not None else 9) and charged["prompt_eval_count"] == 10
