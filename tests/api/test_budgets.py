"""Budgets hold: cut streams and cancelled jobs are charged what was generated, a job stops between calls when its
tenant's budget is spent, admissions reserve an estimate, and batched usage survives kill -9."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from app.backends.sim import SimBackend
from app.core.settings import Settings
from app.execution.usage_journal import UsageJournal
from app.main import create_app
from app.routing import load_agents
from app.storage import db
from app.storage.repo import Repo
from tests.api.conftest import router_settings, serve
from tests.api.scripted_ollama import FakeOllama

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ROOT = Path(__file__).resolve().parents[2]
ADMIN = {"Authorization": "Bearer admin-secret"}
CHAT = {"model": "gemma2:2b", "messages": [{"role": "user", "content": "hi"}]}


def tenant(client: Any, name: str, **extra: Any) -> dict[str, str]:
    resp = client.post("/admin/tenants", headers=ADMIN, json={"name": name, **extra})
    assert resp.status_code == 201, resp.text
    return {"Authorization": f"Bearer {resp.json()['api_key']}"}


def used(client: Any, key: dict[str, str]) -> int:
    return int(client.get("/tenants/me", headers=key).json()["usage"]["tokens_used"])


@pytest.fixture(scope="module")
def fake_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeOllama, str]]:
    fake = FakeOllama()
    with serve(fake.app()) as fake_url:
        cfg = router_settings(tmp_path_factory.mktemp("budget"), ollama_base_url=fake_url, admin_key="admin-secret")
        with serve(create_app(cfg)) as url:
            yield fake, url


@pytest.mark.parametrize(
    ("path", "body"),
    [("/api/chat", CHAT), ("/v1/chat/completions", {**CHAT, "stream": True})],
)
def test_stream_hung_up_early_is_charged(fake_stack: tuple[FakeOllama, str], path: str, body: Any) -> None:
    fake, url = fake_stack
    fake.fault = "slow_tokens"
    try:
        with httpx.Client(base_url=url, timeout=30) as c:
            key = tenant(c, f"hangup{path.count('v1')}", token_budget=10_000)
            with c.stream("POST", path, json=body, headers=key) as resp:
                lines = []
                for line in resp.iter_lines():
                    if line.strip():
                        lines.append(line)
                    if len(lines) == 5:
                        break  # the client hangs up mid-answer
            deadline = time.monotonic() + 10
            while used(c, key) < 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert 4 <= used(c, key) < 200  # the relayed chunks, not the 200 never generated, nor zero
    finally:
        fake.fault = "ok"


def test_stream_cut_upstream_is_charged(fake_stack: tuple[FakeOllama, str]) -> None:
    fake, url = fake_stack
    fake.fault = "mid_stream_break"
    try:
        with httpx.Client(base_url=url, timeout=30) as c:
            key = tenant(c, "cut", token_budget=10_000)
            text = c.post("/api/chat", json=CHAT, headers=key).text
            assert '"error"' in text.splitlines()[-1]
            assert used(c, key) == 2  # the two token chunks relayed before the break
    finally:
        fake.fault = "ok"


CHAIN = [
    {"id": f"s{i}", "task_type": "code", "description": f"step {i}", "estimated_tokens": 100}
    | ({"deps": [f"s{i - 1}"]} if i else {})
    for i in range(30)
]


def make(settings: Settings, time_scale: float = 0.0) -> TestClient:
    sim = SimBackend(load_agents(CONFIGS / "agents_heavy.json"), 8.0, seed=2, time_scale=time_scale)
    return TestClient(create_app(settings, backend=sim, admin_key="admin-secret"))


def test_job_stops_between_calls_when_the_budget_is_spent(settings: Settings) -> None:
    with make(settings) as c:
        key = tenant(c, "small", token_budget=2000)
        job = c.post("/jobs", params={"wait": "true"}, json={"subtasks": CHAIN}, headers=key).json()
        assert job["status"] == "failed" and "token budget exhausted" in job["error"], job["error"]
        done = [s for s in job["subtasks"] if s["status"] == "done"]
        assert 0 < len(done) < 30
        per_call = max(s["prompt_tokens"] + s["eval_tokens"] for s in done)
        spent = used(c, key)
        assert 2000 <= spent <= 2000 + per_call  # overshoot within one call's tokens
        assert spent == sum(s["prompt_tokens"] + s["eval_tokens"] for s in done)
        assert c.post("/jobs", json={"subtasks": CHAIN[:1]}, headers=key).status_code == 429


def test_cancelled_job_is_charged_what_it_used(settings: Settings) -> None:
    with make(settings, time_scale=1.0) as c:
        key = tenant(c, "canceller", token_budget=10**9)
        job_id = c.post("/jobs", json={"subtasks": CHAIN[:6]}, headers=key).json()["id"]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            subs = c.get(f"/jobs/{job_id}", headers=key).json()["subtasks"]
            if any(s["status"] == "done" for s in subs):
                break
            time.sleep(0.05)
        assert c.delete(f"/jobs/{job_id}", headers=key).json()["status"] == "cancelled"
        job = c.get(f"/jobs/{job_id}", headers=key).json()
        generated = sum((s["prompt_tokens"] or 0) + (s["eval_tokens"] or 0) for s in job["subtasks"])
        done = sum(s["prompt_tokens"] + s["eval_tokens"] for s in job["subtasks"] if s["status"] == "done")
        assert 0 < done <= generated and used(c, key) == generated == job["total_tokens"]
        assert c.get("/tenants/me", headers=key).json()["usage"]["tokens_reserved"] == 0


def test_cancel_during_a_call_charges_the_call(settings: Settings) -> None:
    """Cancelled while its first model call runs (a slow model on the paced sim): that call answers nothing, so
    it is charged its estimate (prompt + expected output), the subtask says so, and the reservation goes back."""
    slow = [{"id": "big", "task_type": "reasoning", "description": "a long proof " * 20, "estimated_tokens": 400}]
    with make(settings, time_scale=1.0) as c:
        key = tenant(c, "midcall", token_budget=10**9)
        job_id = c.post("/jobs", json={"subtasks": slow}, headers=key).json()["id"]
        assert c.get("/tenants/me", headers=key).json()["usage"]["tokens_reserved"] > 0
        deadline = time.monotonic() + 30
        while c.get(f"/jobs/{job_id}", headers=key).json()["status"] != "running":  # its call is dispatched
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.3)  # inside the call: a load plus a decode of seconds on the paced sim
        assert c.delete(f"/jobs/{job_id}", headers=key).json()["status"] == "cancelled"
        job = c.get(f"/jobs/{job_id}", headers=key).json()
        (sub,) = job["subtasks"]
        assert sub["status"] == "failed" and "charged its estimate" in sub["error"], sub
        charged = sub["prompt_tokens"] + sub["eval_tokens"]
        assert sub["eval_tokens"] == 400 and sub["prompt_tokens"] > len(slow[0]["description"]) // 4
        usage = c.get("/tenants/me", headers=key).json()["usage"]
        assert usage["tokens_used"] == charged == job["total_tokens"] > 0
        assert usage["tokens_reserved"] == 0


def test_admission_reserves_an_estimate(settings: Settings) -> None:
    with make(settings, time_scale=1.0) as c:
        key = tenant(c, "burst", token_budget=1000)
        body = {"subtasks": CHAIN[:5]}  # estimate: 5 x 100 tokens (+ prompts)
        first = c.post("/jobs", json=body, headers=key)
        second = c.post("/jobs", json=body, headers=key)
        third = c.post("/jobs", json=body, headers=key)
        assert first.status_code == 202 and second.status_code == 202
        assert third.status_code == 429 and "reserved" in third.json()["error"]["message"]
        for job in (first, second):
            c.delete(f"/jobs/{job.json()['id']}", headers=key)


KILLED = """
import asyncio, os, signal, sys
from pathlib import Path
from app.execution.usage import UsageSink
from app.execution.usage_journal import UsageJournal
from app.storage import db
from app.storage.repo import Repo

async def main() -> None:
    repo = Repo(db.make_engine(sys.argv[1]))
    sink = UsageSink(repo, flush_delay_s=60, journal=UsageJournal(Path(sys.argv[2])))
    for _ in range(7):
        sink.add_id(sys.argv[3], 11)
    os.kill(os.getpid(), signal.SIGKILL)  # inside the batching window

asyncio.run(main())
"""


def test_batched_usage_survives_kill_9(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'swarm.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    repo = Repo(engine)
    tenant_id = repo.ensure_default_tenant().id
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    code = textwrap.dedent(KILLED)
    proc = subprocess.run([sys.executable, "-c", code, url, str(tmp_path / "usage"), tenant_id], env=env, check=False)
    assert proc.returncode == -9
    assert repo.get_tenant(tenant_id).tokens_used == 0  # type: ignore[union-attr]
    replayed = UsageJournal(tmp_path / "usage").replay(repo.add_tokens_used)  # what the next start does
    assert replayed == 77 and repo.get_tenant(tenant_id).tokens_used == 77  # type: ignore[union-attr]
    assert UsageJournal(tmp_path / "usage").replay(repo.add_tokens_used) == 0  # once only


def test_helper_calls_are_charged(settings: Settings) -> None:
    """A query job's decomposer and synthesis calls use tokens too: the tenant is charged them with the subtasks'
    (the job's summary says how many: helper_tokens)."""
    with make(settings) as c:
        key = tenant(c, "helpers", token_budget=10**9)
        job = c.post("/jobs", params={"wait": "true"}, json={"query": "Plan a trip and price it."}, headers=key)
        summary = job.json()["summary"]
        assert job.json()["status"] == "succeeded" and summary["helper_tokens"] > 0
        assert used(c, key) == job.json()["total_tokens"] + summary["helper_tokens"]


def test_cancel_during_the_decomposer_charges_it(settings: Settings) -> None:
    with make(settings, time_scale=1.0) as c:
        key = tenant(c, "early", token_budget=10**9)
        job_id = c.post("/jobs", json={"query": "Prove it, then code it."}, headers=key).json()["id"]
        deadline = time.monotonic() + 30
        while c.get(f"/jobs/{job_id}", headers=key).json()["status"] != "running":  # the decomposer is dispatched
            assert time.monotonic() < deadline
            time.sleep(0.02)
        time.sleep(0.2)  # inside its call (a model load of a second or more on the paced sim)
        assert c.delete(f"/jobs/{job_id}", headers=key).json()["status"] == "cancelled"
        job = c.get(f"/jobs/{job_id}", headers=key).json()
        assert job["subtasks"] == [] and job["summary"]["helper_tokens"] > 0  # cut before the plan existed
        usage = c.get("/tenants/me", headers=key).json()["usage"]
        assert usage["tokens_used"] == job["summary"]["helper_tokens"] and usage["tokens_reserved"] == 0
