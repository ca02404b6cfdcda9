"""The JSON the dashboard reads: GET /gpus, the admin's view of every tenant, GET /bench, and the offline docs."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from app.api.routes.gpus import swap_events
from app.backends.residency import GpuMemory
from app.main import create_app
from app.storage.models import TelemetryEvent
from tests.dashboard.conftest import ADMIN_KEY, TWO_STEP_JOB, Service, service_settings, wait_job


def _admin(service: Service) -> httpx.Client:
    return service.client(ADMIN_KEY)


def test_gpus_shows_resident_models_and_the_callers_own_swaps(service: Service) -> None:
    with service.client(service.tenant_key) as alice:
        job = wait_job(alice, alice.post("/jobs", json=TWO_STEP_JOB).json()["id"])
        assert job["status"] == "succeeded"
        view = alice.get("/gpus").json()
    (gpu,) = view["gpus"]
    assert gpu["capacity_gb"] == 8.0 and gpu["tenants"] == ["alice"]
    used = {m["name"]: m for m in gpu["resident"]}
    ran_on = {t["model"] for t in job["subtasks"]}  # type: ignore[union-attr]
    assert ran_on <= set(used)
    assert all(m["in_flight"] == 0 and m["size_vram_gb"] > 0 for m in used.values())
    assert gpu["used_gb"] == pytest.approx(sum(m["size_vram_gb"] for m in used.values()))
    assert gpu["in_flight_tracked"] is True
    assert view["queue"] == {"by_model": {}, "by_tenant": {}, "source": "scheduler"}  # nothing waits
    loads = [e for e in view["events"] if e["job_id"] == job["id"] and e["kind"] == "load"]
    assert loads and loads[0]["served"] and loads[0]["served"][0] in loads[0]["reason"]

    with service.client(service.other_key) as bob:
        assert all(e["job_id"] != job["id"] for e in bob.get("/gpus").json()["events"])
        assert bob.get("/gpus", params={"events": 5000}).status_code == 422
    with _admin(service) as admin:
        everything = admin.get("/gpus").json()
    assert {"alice", "bob", "default"} <= set(everything["gpus"][0]["tenants"])
    assert any(e["job_id"] == job["id"] for e in everything["events"])


def test_the_admin_reads_every_tenants_jobs_a_tenant_only_its_own(service: Service) -> None:
    with service.client(service.tenant_key) as alice:
        job_id = alice.post("/jobs?wait=true", json=TWO_STEP_JOB).json()["id"]
    with service.client(service.other_key) as bob:
        assert bob.get(f"/jobs/{job_id}").status_code == 404
        assert job_id not in {j["id"] for j in bob.get("/jobs").json()["items"]}
        assert bob.get(f"/jobs/{job_id}/events").status_code == 404
    with _admin(service) as admin:
        listed = {j["id"]: j for j in admin.get("/jobs", params={"limit": 200}).json()["items"]}
        assert listed[job_id]["tenant_id"] == admin.get(f"/jobs/{job_id}").json()["tenant_id"] != "default"
        with admin.stream("GET", f"/jobs/{job_id}/events") as events:
            names = [line[7:] for line in events.iter_lines() if line.startswith("event: ")]
    assert "plan_step" in names and names[-1] == "end"


def test_bench_list_with_progress_per_tenant(service: Service) -> None:
    body = {"benchmarks": ["workflowbench"], "compare": "lp", "limit": 1, "seed": 3, "dry_run": True}
    with service.client(service.tenant_key) as alice:
        run_id = alice.post("/bench", json=body).json()["id"]
        deadline = time.monotonic() + 60
        while (run := alice.get(f"/bench/{run_id}").json())["status"] in ("queued", "running"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        (item,) = [r for r in alice.get("/bench").json()["items"] if r["id"] == run_id]
    assert run["status"] == item["status"] == "succeeded" and item["progress"] == 1.0
    assert item["config"]["benchmarks"] == ["workflowbench"] and "report" not in item
    with service.client(service.other_key) as bob:
        assert run_id not in {r["id"] for r in bob.get("/bench").json()["items"]}
        assert bob.get(f"/bench/{run_id}").status_code == 404
        assert bob.get("/bench", params={"limit": 0}).status_code == 422
    with _admin(service) as admin:
        assert run_id in {r["id"] for r in admin.get("/bench").json()["items"]}


def test_swap_events_name_the_work_each_swap_served() -> None:
    row = TelemetryEvent(
        tenant_id="t1",
        job_id="job_1",
        ts=10.0,
        event_type="plan_step",
        payload={
            "step": 2,
            "models_swapped_in": ["gemma2:2b"],
            "evictions_done": ["llama3.1:8b"],
            "executed_assignments": [{"subtask_id": "a", "model": "gemma2:2b"}, {"subtask_id": "b", "model": "x"}],
            "measured_switch_ms": 812.5,
        },
    )
    load, evict = swap_events(row, "gpu0")
    assert (load["kind"], load["model"], load["served"], load["switch_ms"]) == ("load", "gemma2:2b", ["a"], 812.5)
    assert load["reason"] == "runs a of job job_1 (step 2)"
    assert (evict["kind"], evict["model"], evict["gpu"]) == ("evict", "llama3.1:8b", "gpu0")
    assert evict["reason"] == "made room for gemma2:2b (subtasks a of job job_1)"
    assert swap_events(row.model_copy(update={"payload": {"step": 0}}), "gpu0") == []


def test_in_flight_counts_follow_acquire_and_release() -> None:
    async def scenario() -> list[dict[str, int]]:
        memory = GpuMemory(8.0)

        async def load() -> float:
            return 1.0

        seen = []
        await memory.acquire("m", 2.0, "5m", load)
        await memory.acquire("m", 2.0, "5m", load)
        seen.append(memory.in_flight())
        await memory.release("m")
        seen.append(memory.in_flight())
        await memory.release("m")
        seen.append(memory.in_flight())
        return seen

    assert asyncio.run(scenario()) == [{"m": 2}, {"m": 1}, {"m": 0}]


class FakeScheduler:
    """A queue source as the GPU scheduler will provide one."""

    name = "scheduler"

    def queue_snapshot(self, tenant_id: str | None) -> dict[str, dict[str, int]]:
        by_tenant = {"alice": 2, "bob": 1}
        if tenant_id is not None:
            by_tenant = {k: v for k, v in by_tenant.items() if k == tenant_id}
        return {"by_model": {"phi4:14b": sum(by_tenant.values())}, "by_tenant": by_tenant}


def test_queue_section_is_filled_by_an_attached_scheduler(tmp_path: Path) -> None:
    with TestClient(create_app(service_settings(tmp_path, 0.0))) as client:
        client.app.state.runtime.scheduler = FakeScheduler()  # type: ignore[attr-defined]
        queue = client.get("/gpus", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()["queue"]
    assert queue == {"by_model": {"phi4:14b": 3}, "by_tenant": {"alice": 2, "bob": 1}, "source": "scheduler"}


def test_docs_pages_reference_only_local_assets(tmp_path: Path) -> None:
    with TestClient(create_app(service_settings(tmp_path, 0.0))) as client:
        for page in ("/docs", "/redoc"):
            html = client.get(page).text
            assert re.findall(r"https?://", html) == [], page
            for asset in re.findall(r'(?:src|href)="(/[^"]+)"', html):
                resp = client.get(asset)
                assert resp.status_code == 200 and len(resp.content) > 1000, asset
        bundle = client.get("/docs-assets/redoc.standalone.js").content
        assert b"cdn.redoc.ly" not in bundle and b"Redoc" in bundle
        assert "/gpus" in client.get("/openapi.json").json()["paths"]
        assert client.get("/docs-assets/swagger-ui-bundle.js").headers["content-type"].startswith("text/javascript")


def test_dashboard_page_and_its_modules_are_served_from_the_package(tmp_path: Path) -> None:
    with TestClient(create_app(service_settings(tmp_path, 0.0))) as client:
        page = client.get("/ui")
        assert page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
        assert client.get("/ui/", follow_redirects=False).headers["location"] == "/ui"
        pending, seen = re.findall(r'(?:src|href)="(/ui/static/[^"]+)"', page.text), set()
        while pending:  # every module the page imports, transitively, is served and has no outside URL
            path = pending.pop()
            if path in seen:
                continue
            seen.add(path)
            resp = client.get(path)
            assert resp.status_code == 200, path
            assert re.findall(r"https?://(?!www\.w3\.org/2000/svg)", resp.text) == [], path
            pending += ["/ui/static/" + m for m in re.findall(r'from "\./([\w.]+)"', resp.text)]
    assert {"/ui/static/app.js", "/ui/static/matrix.js", "/ui/static/charts.js", "/ui/static/app.css"} <= seen


def test_the_admin_sees_every_gpu_and_an_unreachable_one_says_so(tmp_path: Path) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with TestClient(create_app(service_settings(tmp_path, 0.0))) as client:
        closed = "http://127.0.0.1:9"  # the discard port: nothing listens there
        created = client.post("/admin/tenants", json={"name": "remote", "backend_url": closed}, headers=admin)
        own = {"Authorization": f"Bearer {created.json()['api_key']}"}
        everything = client.get("/gpus", headers=admin).json()["gpus"]
        mine = client.get("/gpus", headers=own).json()["gpus"]
    by_id = {g["id"]: g for g in everything}
    assert set(by_id) == {"sim", closed}
    assert by_id[closed]["tenants"] == ["remote"] and by_id[closed]["error"] and by_id[closed]["resident"] == []
    assert by_id[closed]["in_flight_tracked"] is True  # the scheduler counts calls on every backend
    assert "remote" not in by_id["sim"]["tenants"]
    assert [g["id"] for g in mine] == [closed]
