"""Back-pressure through the HTTP API: a tenant over its queue gets 429, a saturated GPU 503, both with
Retry-After and in each API family's own error shape; a client that leaves is removed from the queue."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.cli.sim import build_sim_app
from app.core.settings import SchedulerSettings
from app.main import create_app
from tests.api.conftest import router_settings, serve, sim_backend

CHAT = {"messages": [{"role": "user", "content": "Summarize: the cat sat on the mat."}], "stream": False}


@pytest.fixture(scope="module")
def slow_router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A router whose GPU runs one call per model and lets a tenant queue one call (the GPU: two)."""
    sim = sim_backend(time_scale=0.5)  # a call takes a while: the queue fills
    with serve(build_sim_app(sim)) as sim_url:
        sched = SchedulerSettings(num_parallel=1, max_queue_per_tenant=1, max_queue=2, tick_s=0.05)
        cfg = router_settings(tmp_path_factory.mktemp("bp"), ollama_base_url=sim_url, scheduler=sched)
        with serve(create_app(cfg)) as url:
            yield url


def _background(url: str, path: str, body: dict[str, object], out: list[int]) -> threading.Thread:
    def run() -> None:
        out.append(httpx.post(url + path, json=body, timeout=60).status_code)

    t = threading.Thread(target=run)
    t.start()
    return t


def test_a_tenant_over_its_queue_gets_429_with_retry_after_in_each_shape(slow_router: str) -> None:
    codes: list[int] = []
    threads = [_background(slow_router, "/api/chat", {"model": "llama3.1:8b", **CHAT}, codes)]
    time.sleep(0.3)  # llama runs in its one slot
    threads.append(_background(slow_router, "/api/chat", {"model": "llama3.1:8b", **CHAT}, codes))
    time.sleep(0.3)  # the second call waits: the tenant's one queued call
    native = httpx.post(slow_router + "/api/chat", json={"model": "llama3.1:8b", **CHAT}, timeout=30)
    v1 = httpx.post(slow_router + "/v1/chat/completions", json={"model": "llama3.1:8b", **CHAT}, timeout=30)
    job = httpx.post(slow_router + "/jobs", json={"query": "Name a planet."}, timeout=30)
    for t in threads:
        t.join()
    assert codes == [200, 200]  # the running and the queued call both complete
    assert native.status_code == 429 and int(native.headers["retry-after"]) >= 1
    assert set(native.json()) == {"error"} and "retry later" in native.json()["error"]
    assert v1.status_code == 429 and int(v1.headers["retry-after"]) >= 1
    assert v1.json()["error"]["code"] == "queue_full" and "x-should-retry" not in v1.headers
    assert job.status_code == 429 and job.json()["error"]["code"] == "queue_full" and job.headers["retry-after"]


def test_a_client_that_leaves_is_removed_from_the_queue(slow_router: str) -> None:
    codes: list[int] = []
    running = _background(slow_router, "/api/chat", {"model": "llama3.1:8b", **CHAT}, codes)
    time.sleep(0.3)
    with pytest.raises(httpx.TimeoutException):  # queued behind the running call; the client gives up
        httpx.post(slow_router + "/api/chat", json={"model": "llama3.1:8b", **CHAT}, timeout=0.3)
    time.sleep(0.2)
    gpus = httpx.get(slow_router + "/gpus").json()
    assert gpus["queue"]["by_model"].get("llama3.1:8b", 0) == 0  # the abandoned call left the queue
    running.join()
    assert codes == [200]


def test_errors_keep_their_shape(tmp_path: Path) -> None:
    from app.api.errors import anthropic_error, ollama_error, openai_error
    from app.core.errors import GpuSaturated, QueueFull

    full = QueueFull("tenant 't' already has 1 calls waiting on this GPU; retry later", 7.4)
    assert ollama_error(full).status_code == 429 and ollama_error(full).headers["retry-after"] == "7"
    saturated = openai_error(GpuSaturated("the GPU's queue is full; retry later", 2.0))
    assert saturated.status_code == 503 and saturated.headers["retry-after"] == "2"
    assert "x-should-retry" not in saturated.headers  # a client may retry after the wait
    anthropic = anthropic_error(full)
    assert anthropic.status_code == 429 and anthropic.headers["retry-after"] == "7"


def test_jobs_submitted_at_once_hold_their_place_in_the_queue_bounds(tmp_path: Path) -> None:
    """A job counts as a waiting call from admission until its first call is dispatched: a burst of jobs cannot
    slip past the bounds before any of them has queued a call."""
    sim = sim_backend(time_scale=0.5)
    with serve(build_sim_app(sim)) as sim_url:
        sched = SchedulerSettings(num_parallel=1, max_queue_per_tenant=3, max_queue=50, tick_s=0.05)
        cfg = router_settings(tmp_path, ollama_base_url=sim_url, scheduler=sched)
        with serve(create_app(cfg)) as url:
            codes: list[int] = []
            body = {"subtasks": [{"id": "a", "task_type": "summarize", "description": "Summarize: a cat sat."}]}
            threads = [_background(url, "/jobs", body, codes) for _ in range(12)]
            for t in threads:
                t.join()
            assert codes.count(202) <= 4 and codes.count(429) >= 8  # at most the bound (+1 already dispatched)
