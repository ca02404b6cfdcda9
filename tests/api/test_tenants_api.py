"""Tenants and keys: admin CRUD, isolation (404 for foreign ids), 401s, budget 429, export, readiness."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.backends.ollama import OllamaBackend
from app.backends.sim import SimBackend
from app.backends.transport import HttpxTransport
from app.core.settings import Settings
from app.main import create_app
from app.routing import load_agents

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ADMIN = {"Authorization": "Bearer admin-secret"}
ONE = {"subtasks": [{"id": "s", "task_type": "code", "description": "write hello world"}]}


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    sim = SimBackend(load_agents(CONFIGS / "agents_heavy.json"), 8.0)
    with TestClient(create_app(settings, backend=sim, admin_key="admin-secret")) as c:
        yield c


def new_tenant(client: TestClient, name: str, **extra: object) -> dict[str, str]:
    resp = client.post("/admin/tenants", headers=ADMIN, json={"name": name, **extra})
    assert resp.status_code == 201, resp.text
    key = resp.json()["api_key"]
    assert key.startswith("sk-swarm-")
    return {"Authorization": f"Bearer {key}"}


def test_admin_required(client: TestClient) -> None:
    assert client.get("/admin/tenants").status_code == 401
    assert client.get("/admin/tenants", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.post("/admin/tenants", headers=ADMIN, json={"name": "bad name!"}).status_code == 422


def test_keys_and_isolation(client: TestClient) -> None:
    # open default tenant until a keyed tenant exists
    assert client.post("/jobs", params={"wait": "true"}, json=ONE).status_code == 200
    alice, bob = new_tenant(client, "alice"), new_tenant(client, "bob")
    assert client.post("/jobs", json=ONE).status_code == 401  # no key any more
    assert client.get("/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/jobs", headers={"Authorization": "Basic abc"}).status_code == 401
    job = client.post("/jobs", params={"wait": "true"}, json=ONE, headers=alice).json()
    assert client.get(f"/jobs/{job['id']}", headers=alice).status_code == 200
    foreign = client.get(f"/jobs/{job['id']}", headers=bob)
    assert foreign.status_code == 404 and "not found" in foreign.json()["error"]["message"]
    assert client.delete(f"/jobs/{job['id']}", headers=bob).status_code == 404
    assert client.get(f"/jobs/{job['id']}/events", headers=bob).status_code == 404
    assert client.get("/jobs", headers=bob).json()["total"] == 0
    assert client.get("/telemetry/export", headers=bob).text == ""
    lines = client.get("/telemetry/export", headers=alice, params={"job_id": job["id"]}).text.splitlines()
    assert lines and all(json.loads(line)["job_id"] == job["id"] for line in lines)
    kinds = {json.loads(line)["event_type"] for line in lines}
    assert {"subtask_plan", "dag_structure", "plan_step", "subtask", "job"} <= kinds
    only = client.get("/telemetry/export", headers=alice, params={"event_type": "job"}).text.splitlines()
    assert len(only) == 1
    assert client.get("/telemetry/export", headers=alice, params={"since": "not-a-date"}).status_code == 422
    me = client.get("/tenants/me", headers=alice).json()
    assert me["name"] == "alice" and me["usage"]["tokens_used"] > 0 and "loaded" in me["gpu"]


def test_budget_exhaustion_is_429(client: TestClient) -> None:
    carol = new_tenant(client, "carol", token_budget=1)
    assert client.post("/jobs", params={"wait": "true"}, json=ONE, headers=carol).status_code == 200
    resp = client.post("/jobs", json=ONE, headers=carol)
    assert resp.status_code == 429 and "token budget exhausted" in resp.json()["error"]["message"]


def test_delete_tenant_revokes_key(client: TestClient) -> None:
    new_tenant(client, "keeper")  # with no keyed tenant left the service would be open again (any key serves)
    dave = new_tenant(client, "dave")
    tid = next(t["id"] for t in client.get("/admin/tenants", headers=ADMIN).json()["items"] if t["name"] == "dave")
    assert client.delete(f"/admin/tenants/{tid}", headers=ADMIN).json()["deleted"] is True
    assert client.get("/jobs", headers=dave).status_code == 401
    assert client.delete(f"/admin/tenants/{tid}", headers=ADMIN).status_code == 404


def test_deleting_a_tenant_that_owns_data_needs_purge(client: TestClient) -> None:
    frank = new_tenant(client, "frank")
    tid = next(t["id"] for t in client.get("/admin/tenants", headers=ADMIN).json()["items"] if t["name"] == "frank")
    job = client.post("/jobs", params={"wait": "true"}, json=ONE, headers=frank).json()
    refused = client.delete(f"/admin/tenants/{tid}", headers=ADMIN)
    assert refused.status_code == 409 and "1 jobs" in refused.json()["error"]["message"]
    assert "purge=true" in refused.json()["error"]["message"]
    assert client.get(f"/jobs/{job['id']}", headers=frank).status_code == 200  # nothing was lost
    client.app.state.runtime.repo.update_job(job["id"], status="running")  # type: ignore[attr-defined]
    busy = client.delete(f"/admin/tenants/{tid}", params={"purge": "true"}, headers=ADMIN)
    assert busy.status_code == 409 and "unfinished" in busy.json()["error"]["message"]
    client.app.state.runtime.repo.update_job(job["id"], status="done")  # type: ignore[attr-defined]
    done = client.delete(f"/admin/tenants/{tid}", params={"purge": "true"}, headers=ADMIN).json()
    assert done["deleted"] is True and done["purged"]["jobs"] == 1
    assert client.get(f"/jobs/{job['id']}", headers=ADMIN).status_code == 404


def test_tenant_with_inline_agents_routes_on_them(client: TestClient) -> None:
    agent = {
        "name": "gemma2:2b",
        "cost_per_token": 0.1,
        "max_ctx": 4096,
        "capabilities": {"code": 0.3},
        "vram_gb": 2.0,
        "load_time_ms": 100,
    }
    erin = new_tenant(client, "erin", agents=[agent])
    plan = client.post("/route", headers=erin, json=ONE).json()
    assert {a["model"] for a in plan["assignments"]} == {"gemma2:2b"}


def test_readyz_reports_backend_down(settings: Settings) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    down = OllamaBackend(HttpxTransport(httpx.AsyncClient(transport=httpx.MockTransport(refuse)), "http://127.0.0.1:9"))
    with TestClient(create_app(settings, backend=down)) as client:
        resp = client.get("/readyz")
        assert resp.status_code == 503
        comps = resp.json()["components"]
        assert comps["database"]["ok"] is True and comps["backend"]["ok"] is False
        assert "127.0.0.1:9" in comps["backend"]["error"]
        job = client.post("/jobs", params={"wait": "true"}, json=ONE).json()
        assert job["status"] == "failed" and "cannot connect to Ollama at http://127.0.0.1:9" in job["error"]


def test_restart_marks_unfinished_jobs_interrupted(settings: Settings) -> None:
    sim = SimBackend(load_agents(CONFIGS / "agents_heavy.json"), 8.0, time_scale=1.0)
    with TestClient(create_app(settings, backend=sim)) as c:
        job_id = c.post("/jobs", json=ONE).json()["id"]
    # shutdown cancelled the running job and recorded it
    with TestClient(create_app(settings, backend=SimBackend(load_agents(CONFIGS / "agents_heavy.json"), 8.0))) as c:
        assert c.get(f"/jobs/{job_id}").json()["status"] in ("cancelled", "interrupted")
