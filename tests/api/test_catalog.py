"""Catalog reconciliation against a simulated Ollama that has only some catalog models installed."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from app.backends.sim import SimBackend
from app.cli.sim import build_sim_app
from app.main import create_app
from app.routing import load_agents
from tests.api.conftest import ADMIN_KEY, BIG_G, CONFIGS, Stack, router_settings, serve

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
CATALOG = ["gemma2:2b", "qwen2.5-coder:7b", "llama3.1:8b", "phi4:14b"]
PROMPTS = [
    "Write a Python function that parses ISO dates and returns the weekday.",
    "Prove that the sum of two even numbers is even, step by step.",
    "Compute 17 * 23 + 5 and explain.",
    "Summarize this paragraph in one line: the quick brown fox jumps over the lazy dog many times.",
    "Extract every year from: founded in 1998, moved in 2004, sold in 2019.",
    "Write a short poem about routers.",
]


@contextmanager
def partial_stack(root: Path, installed: list[str], **settings: object) -> Iterator[Stack]:
    sim = SimBackend(load_agents(CONFIGS / "agents_heavy.json"), BIG_G, seed=3, installed=installed)
    with serve(build_sim_app(sim)) as sim_url:
        cfg = router_settings(root, ollama_base_url=sim_url, admin_key=ADMIN_KEY, **settings)
        with serve(create_app(cfg)) as router_url:
            yield Stack(sim_url, router_url, sim)


@pytest.fixture
def two(tmp_path: Path) -> Iterator[Stack]:
    with partial_stack(tmp_path, ["gemma2:2b", "llama3.1:8b"]) as s:
        yield s


def _chat(url: str, model: str, text: str) -> httpx.Response:
    body = {"model": model, "messages": [{"role": "user", "content": text}], "stream": False}
    return httpx.post(url + "/api/chat", json=body, timeout=30)


def test_auto_never_picks_a_missing_model_and_says_which_it_skipped(two: Stack) -> None:
    picked = set()
    for text in PROMPTS * 2:
        resp = _chat(two.router_url, "auto", text)
        assert resp.status_code == 200, resp.text
        picked.add(resp.headers["x-swarm-routed-model"])
        assert resp.headers["x-swarm-skipped-models"] == "qwen2.5-coder:7b,phi4:14b"
    assert picked and picked <= {"gemma2:2b", "llama3.1:8b"}


def test_explicit_missing_model_is_a_clear_404(two: Stack) -> None:
    resp = _chat(two.router_url, "phi4:14b", "hi")
    assert resp.status_code == 404
    message = resp.json()["error"]
    assert message.startswith("model 'phi4:14b' is not installed on " + two.sim_url)
    assert "`ollama pull phi4:14b`" in message and "swarm models --ensure" in message
    openai = httpx.post(
        two.router_url + "/v1/chat/completions",
        json={"model": "phi4:14b", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert openai.status_code == 404 and openai.json()["error"]["code"] == "model_not_found"


def test_readyz_and_tenants_me_report_missing_models(two: Stack) -> None:
    ready = httpx.get(two.router_url + "/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "degraded"
    catalog = ready.json()["components"]["catalog"]
    assert catalog["ok"] is True and catalog["missing"] == ["qwen2.5-coder:7b", "phi4:14b"]
    assert catalog["routable"] == ["gemma2:2b", "llama3.1:8b"]
    me = httpx.get(two.router_url + "/tenants/me").json()
    assert me["models"]["missing"] == ["qwen2.5-coder:7b", "phi4:14b"] and me["models"]["known"] is True


def test_jobs_and_route_skip_missing_models(two: Stack) -> None:
    subtasks = [
        {"id": "c", "task_type": "code", "description": "Write fizzbuzz in Python."},
        {"id": "m", "task_type": "math", "description": "What is 12 * 12?", "deps": ["c"]},
    ]
    job = httpx.post(two.router_url + "/jobs?wait=true", json={"subtasks": subtasks, "routing": "lp"}, timeout=60)
    assert job.status_code == 200, job.text
    assert job.json()["skipped_models"] == ["qwen2.5-coder:7b", "phi4:14b"]
    assert {s["model"] for s in job.json()["subtasks"]} <= {"gemma2:2b", "llama3.1:8b"}
    assert job.json()["status"] == "succeeded"
    plan = httpx.post(two.router_url + "/route", json={"subtasks": subtasks, "gpu_vram_gb": 24}).json()
    assert plan["skipped_models"] == ["qwen2.5-coder:7b", "phi4:14b"]
    assert {a["model"] for a in plan["assignments"]} <= {"gemma2:2b", "llama3.1:8b"}
    # A hypothetical decision (loaded_models given) is not about this GPU: every catalog model stays in.
    what_if = httpx.post(two.router_url + "/route", json={"subtasks": subtasks, "loaded_models": []}).json()
    assert what_if["skipped_models"] == []


def test_a_pull_through_the_proxy_makes_the_model_routable(two: Stack) -> None:
    assert _chat(two.router_url, "qwen2.5-coder:7b", "hi").status_code == 404
    pulled = httpx.post(two.router_url + "/api/pull", json={"model": "qwen2.5-coder:7b"}, headers=ADMIN)
    assert pulled.status_code == 200 and '"completed"' in pulled.text
    assert _chat(two.router_url, "qwen2.5-coder:7b", "hi").status_code == 200
    ready = httpx.get(two.router_url + "/readyz").json()
    assert ready["components"]["catalog"]["missing"] == ["phi4:14b"]


def test_none_installed_is_not_ready_and_auto_says_how_to_pull(tmp_path: Path) -> None:
    with partial_stack(tmp_path, []) as s:
        ready = httpx.get(s.router_url + "/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
        assert ready.json()["components"]["catalog"]["ok"] is False
        auto = _chat(s.router_url, "auto", "hi")
        assert auto.status_code == 404
        assert "none of the catalog's models is installed" in auto.json()["error"]
        job = httpx.post(s.router_url + "/jobs", json={"query": "hi"})
        assert job.status_code == 404 and "ollama pull gemma2:2b" in job.json()["error"]["message"]


def test_installed_models_outside_the_catalog_can_be_offered(tmp_path: Path) -> None:
    one = tmp_path / "one.json"
    heavy = json.loads((CONFIGS / "agents_heavy.json").read_text(encoding="utf-8"))
    one.write_text(json.dumps({"agents": heavy["agents"][:1]}), encoding="utf-8")
    with partial_stack(tmp_path, ["gemma2:2b", "llama3.1:8b"], agents_file=one, offer_installed_models=True) as s:
        me = httpx.get(s.router_url + "/tenants/me").json()["models"]
        assert me["installed_not_in_catalog"] == ["llama3.1:8b"]
        assert me["offered_with_derived_defaults"] == ["llama3.1:8b"]
        assert me["routable"] == ["gemma2:2b", "llama3.1:8b"]


def test_the_periodic_refresh_sees_a_pull_made_behind_the_routers_back(tmp_path: Path) -> None:
    with partial_stack(tmp_path, ["gemma2:2b"], catalog_refresh_s=0.2) as s:
        assert httpx.get(s.router_url + "/tenants/me").json()["models"]["routable"] == ["gemma2:2b"]
        assert httpx.post(s.sim_url + "/api/pull", json={"model": "phi4:14b", "stream": False}).status_code == 200
        deadline = time.monotonic() + 5
        while "phi4:14b" not in httpx.get(s.router_url + "/tenants/me").json()["models"]["routable"]:
            assert time.monotonic() < deadline, "the catalog watch never re-read /api/tags"
            time.sleep(0.05)


def test_a_tenant_on_its_own_ollama_is_reconciled_against_that_one(two: Stack) -> None:
    other = SimBackend(load_agents(CONFIGS / "agents_heavy.json"), BIG_G, seed=8, installed=["phi4:14b"])
    with serve(build_sim_app(other)) as other_url:
        made = httpx.post(
            two.router_url + "/admin/tenants", json={"name": "remote", "backend_url": other_url}, headers=ADMIN
        )
        assert made.status_code == 201, made.text
        key = {"Authorization": f"Bearer {made.json()['api_key']}"}
        models = httpx.get(two.router_url + "/tenants/me", headers=key).json()["models"]
        assert models["known"] is True and models["routable"] == ["phi4:14b"]
        body = {"model": "gemma2:2b", "messages": [{"role": "user", "content": "hi"}], "stream": False}
        missing = httpx.post(two.router_url + "/api/chat", json=body, headers=key)
        assert missing.status_code == 404 and other_url in missing.json()["error"]
