"""GET /metrics: Prometheus text with requests, latency, tokens, loads, routing time and errors after real calls."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.api.metrics import metrics_of
from app.main import create_app
from tests.api.conftest import Stack, router_settings, sim_backend

MESSAGES = [{"role": "user", "content": "Summarize: the cat sat on the mat."}]


def _samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    resp = httpx.get(url + "/metrics")
    assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(resp.text)
        for s in family.samples
    }


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_counters_after_requests(live: Stack) -> None:
    url = live.router_url
    for _ in range(3):
        assert httpx.post(
            url + "/api/chat", json={"model": "phi4:14b", "messages": MESSAGES, "stream": False}
        ).is_success
    auto = {"model": "auto", "messages": [{"role": "user", "content": "Write a Python function to sort a list"}]}
    assert httpx.post(url + "/v1/chat/completions", json=auto).is_success
    assert httpx.post(url + "/api/chat", json={"model": "nope:1b", "messages": MESSAGES}).status_code == 404
    s = _samples(url)
    assert _value(s, "swarm_http_requests_total", route="/api/chat", method="POST", status="200") == 3
    assert _value(s, "swarm_http_requests_total", route="/api/chat", method="POST", status="404") == 1
    assert _value(s, "swarm_http_request_duration_seconds_count", route="/v1/chat/completions") == 1
    assert _value(s, "swarm_proxy_requests_total", api="ollama", model="phi4:14b", routed="false") == 3
    assert _value(s, "swarm_proxy_requests_total", api="openai", model="qwen2.5-coder:7b", routed="true") == 1
    assert _value(s, "swarm_tokens_total", model="phi4:14b", kind="completion") > 0
    assert _value(s, "swarm_tokens_total", model="phi4:14b", kind="prompt") > 0
    # phi4 was cold on the sim's GPU: the first call loaded it (load_duration > 0), the next two did not.
    assert _value(s, "swarm_model_loads_total", model="phi4:14b") == 1
    assert _value(s, "swarm_model_load_duration_seconds_count", model="phi4:14b") == 1
    assert _value(s, "swarm_routing_solve_seconds_count", source="fast_path") == 1
    assert _value(s, "swarm_proxy_overhead_seconds_count", api="ollama") >= 3
    assert _value(s, "swarm_errors_total", type="model_not_found") == 1


def _settled_tokens(url: str) -> int:
    """tokens_used once earlier requests have been counted (/tenants/me includes not yet written batches)."""
    last = httpx.get(url + "/tenants/me").json()["usage"]["tokens_used"]
    for _ in range(40):
        time.sleep(0.3)
        now = httpx.get(url + "/tenants/me").json()["usage"]["tokens_used"]
        if now == last:
            return int(now)
        last = now
    raise AssertionError("token usage never settled")


def test_tokens_count_against_the_default_tenant(live: Stack) -> None:
    before = _settled_tokens(live.router_url)
    done = httpx.post(live.router_url + "/v1/chat/completions", json={"model": "gemma2:2b", "messages": MESSAGES})
    used = done.json()["usage"]["total_tokens"]
    assert _settled_tokens(live.router_url) - before == used


def test_each_app_has_its_own_registry(tmp_path: Path) -> None:
    one = create_app(router_settings(tmp_path), backend=sim_backend())
    two = create_app(router_settings(tmp_path), backend=sim_backend())
    first, second = metrics_of(one), metrics_of(two)
    assert first is not None and second is not None and first.registry is not second.registry
    first.errors.labels("x").inc()
    assert second.registry.get_sample_value("swarm_errors_total", {"type": "x"}) is None
