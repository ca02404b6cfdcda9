"""A tenant cannot exceed its GPU: a request's G and inline agents may narrow the tenant's, never widen them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.backends.sim import SimBackend
from app.core.settings import Settings
from app.main import create_app
from app.routing import load_agents

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ADMIN = {"Authorization": "Bearer admin-secret"}
SUBS = [
    {"id": "a", "task_type": "code", "description": "write fizzbuzz"},
    {"id": "b", "task_type": "reasoning", "description": "explain it", "deps": ["a"]},
]


@pytest.fixture
def small(settings: Settings) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """A service with an 8 GB GPU and a tenant configured with G = 3."""
    sim = SimBackend(load_agents(CONFIGS / "agents_heavy.json"), 8.0)
    with TestClient(create_app(settings, backend=sim, admin_key="admin-secret")) as client:
        resp = client.post("/admin/tenants", headers=ADMIN, json={"name": "small", "gpu_vram_gb": 3})
        assert resp.status_code == 201, resp.text
        yield client, {"Authorization": f"Bearer {resp.json()['api_key']}"}


def _field(resp: Any) -> str:
    assert resp.status_code == 422, resp.text
    err = resp.json()["error"]
    assert err["code"] == "exceeds_tenant_config"
    return str(err["details"][0]["field"])


def test_wider_gpu_is_refused_on_route_and_jobs(small: tuple[TestClient, dict[str, str]]) -> None:
    client, key = small
    assert _field(client.post("/route", headers=key, json={"subtasks": SUBS, "gpu_vram_gb": 100})) == "gpu_vram_gb"
    assert _field(client.post("/jobs", headers=key, json={"subtasks": SUBS, "gpu_vram_gb": 100})) == "gpu_vram_gb"
    assert client.get("/jobs", headers=key).json()["total"] == 0
    # the tenant's own G, and any narrower one, are served: every plan fits 3 GB
    for g in (None, 3, 2.5):
        body: dict[str, Any] = {"subtasks": SUBS} if g is None else {"subtasks": SUBS, "gpu_vram_gb": g}
        plan = client.post("/route", headers=key, json=body).json()
        assert plan["hypothetical"] is False and plan["vram_peak_gb"] <= (g or 3)
    job = client.post("/jobs", headers=key, params={"wait": "true"}, json={"subtasks": SUBS})
    assert job.status_code == 200 and job.json()["status"] == "succeeded"
    assert {s["model"] for s in job.json()["subtasks"]} == {"gemma2:2b"}  # the only model within 3 GB


def test_hypothetical_route_explores_but_jobs_never(small: tuple[TestClient, dict[str, str]]) -> None:
    client, key = small
    plan = client.post("/route", headers=key, json={"subtasks": SUBS, "gpu_vram_gb": 100, "hypothetical": True})
    assert plan.status_code == 200 and plan.json()["hypothetical"] is True
    assert plan.json()["vram_peak_gb"] > 3  # the what-if may use the bigger models
    resp = client.post("/jobs", headers=key, json={"subtasks": SUBS, "gpu_vram_gb": 100, "hypothetical": True})
    assert resp.status_code == 422 and resp.json()["error"]["details"][0]["field"] == "hypothetical"


def _agent(**over: Any) -> dict[str, Any]:
    base = load_agents(CONFIGS / "agents_heavy.json")[1].model_dump()  # qwen2.5-coder:7b, 6.5 GB
    return {**base, **over}


@pytest.mark.parametrize(
    ("agent", "field"),
    [
        (_agent(name="tiny-but-great"), "agents.0.name"),
        (_agent(vram_gb=0.5), "agents.0.vram_gb"),
        (_agent(max_ctx=10**7), "agents.0.max_ctx"),
    ],
)
def test_inline_agents_cannot_widen(small: tuple[TestClient, dict[str, str]], agent: Any, field: str) -> None:
    client, key = small
    assert _field(client.post("/route", headers=key, json={"subtasks": SUBS, "agents": [agent]})) == field
    assert _field(client.post("/jobs", headers=key, json={"subtasks": SUBS, "agents": [agent]})) == field


def test_inline_agents_may_narrow(small: tuple[TestClient, dict[str, str]]) -> None:
    client, key = small
    gemma = load_agents(CONFIGS / "agents_heavy.json")[0].model_dump()
    narrower = {**gemma, "vram_gb": 2.5, "max_ctx": 4096, "capabilities": {"code": 0.9}}
    plan = client.post("/route", headers=key, json={"subtasks": SUBS, "agents": [narrower]})
    assert plan.status_code == 200, plan.text
    assert {a["model"] for a in plan.json()["assignments"]} == {"gemma2:2b"}


def test_real_bench_is_held_to_the_tenant_gpu(small: tuple[TestClient, dict[str, str]]) -> None:
    client, key = small
    body = {"benchmarks": ["agentic_bench"], "limit": 1, "gpu_vram_gb": 100}
    assert _field(client.post("/bench", headers=key, json=body)) == "gpu_vram_gb"


def test_open_mode_is_one_rule_for_every_endpoint(settings: Settings) -> None:
    """No keyed tenant: any key is the default tenant on our endpoints and the proxies alike."""
    sim = SimBackend(load_agents(CONFIGS / "agents_heavy.json"), 8.0)
    with TestClient(create_app(settings, backend=sim, admin_key="admin-secret")) as client:
        anyone = {"Authorization": "Bearer sk-whatever"}
        assert client.get("/jobs", headers=anyone).status_code == 200
        assert client.post("/route", headers=anyone, json={"subtasks": SUBS}).status_code == 200
        assert client.get("/tenants/me", headers=anyone).json()["name"] == "default"
        assert client.get("/api/tags", headers=anyone).status_code == 200
        assert client.get("/admin/tenants", headers=anyone).status_code == 401  # admin still needs its key
        client.post("/admin/tenants", headers=ADMIN, json={"name": "first"})
        for path in ("/jobs", "/tenants/me", "/api/tags", "/v1/models"):  # keyed mode: unknown key is 401
            assert client.get(path, headers=anyone).status_code == 401, path
