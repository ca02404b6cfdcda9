"""Scheduler faults found in review, each pinned: an auto call whose preferred model is forced in while its other
candidate is resident, reservations dropped by a re-read of /api/ps, one failed /api/ps read during a swap, a drain
that held up a load into free memory, and a caller's catalog misstating the size of a model the backend reports."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from app.backends.sim import SimBackend
from app.core.errors import BackendUnavailable
from app.core.settings import SchedulerSettings
from app.domain.models import Agent
from app.execution.calls import catalog_specs
from app.execution.sched_types import CallRequest, SchedEvent
from app.execution.scheduler import GpuScheduler

pytestmark = pytest.mark.anyio
CAPS = dict.fromkeys(("code", "reasoning", "math", "creative", "extraction", "summarize"), 0.6)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def agent(name: str, gb: float, load_ms: float = 500) -> Agent:
    return Agent(name=name, cost_per_token=1, max_ctx=8192, capabilities=CAPS, vram_gb=gb, load_time_ms=load_ms)


def settings(**over: Any) -> SchedulerSettings:
    return SchedulerSettings(**{"tick_s": 0.02, "max_wait_s": 2.0, **over})


class Watch:
    def __init__(self, sched: GpuScheduler, capacity: float) -> None:
        self.sched, self.capacity = sched, capacity
        self.violations: list[str] = []
        sched.listeners.append(self)

    def __call__(self, e: SchedEvent) -> None:
        s = self.sched
        if e.kind == "dispatch" and s.inflight[e.model] > s.cfg.num_parallel:
            self.violations.append(f"{s.inflight[e.model]} calls on {e.model}")
        if sum(s.resident.values()) > self.capacity + 1e-9:
            self.violations.append(f"resident {sum(s.resident.values()):.1f} GB")


async def chat(sim: SimBackend, model: str) -> None:
    await sim.chat({"model": model, "messages": [{"role": "user", "content": "hi there"}], "stream": False})


async def test_an_auto_call_runs_on_its_resident_candidate_once_it_is_free() -> None:
    """Its preferred model (x) does not fit beside the resident one (y), whose switch cost outweighs the utility
    gap: the call must go to y when y's slot frees, not wait for a swap that never comes."""
    agents = [agent("x", 8, 5000), agent("y", 6)]
    sim = SimBackend(agents, 10.0, time_scale=0.001)
    sched = GpuScheduler(sim, 10.0, settings(max_wait_s=0.3, hold_s=0, num_parallel=1))
    specs = catalog_specs(agents)
    busy = await sched.acquire(CallRequest("s", {"y": 1.0}, specs))
    auto = asyncio.create_task(sched.acquire(CallRequest("u", {"x": 0.9, "y": 0.8}, specs)))
    await asyncio.sleep(0.6)  # y's call runs past the auto call's max_wait_s
    busy.release()
    lease = await asyncio.wait_for(auto, 3)
    lease.release()
    later = await asyncio.wait_for(sched.acquire(CallRequest("s", {lease.model: 1.0}, specs)), 3)
    later.release()
    sched.close()


async def test_reservations_survive_a_reread_of_the_gpu() -> None:
    """x is reserved and its call dispatched but not yet at the backend when a swap re-reads /api/ps: x still holds
    its room, so a later model that only fits without x is not reserved beside it."""
    agents = [agent("x", 3), agent("y", 7), agent("z", 5)]
    sim = SimBackend(agents, 12.0, time_scale=0.001)
    sched = GpuScheduler(sim, 12.0, settings(hold_s=0))
    watch = Watch(sched, 12.0)
    specs = catalog_specs(agents)
    lx = await sched.acquire(CallRequest("a", {"x": 1.0}, specs))
    ly = await sched.acquire(CallRequest("b", {"y": 1.0}, specs))
    assert "x" in sched.resident  # the swap for y re-read the GPU while x's first call had not loaded it yet

    async def run(lease: Any) -> None:
        async with lease:
            await chat(sim, lease.model)

    runs = [asyncio.create_task(run(lx)), asyncio.create_task(run(ly))]
    z = asyncio.create_task(sched.acquire(CallRequest("c", {"z": 1.0}, specs)))
    await asyncio.gather(*runs)
    (await asyncio.wait_for(z, 5)).release()
    assert watch.violations == []
    assert sim.peak_vram_gb <= 12.0 + 1e-9
    sched.close()


class Blip(SimBackend):
    """/api/ps fails once."""

    fail_at = 3
    reads = 0

    async def loaded(self) -> Any:
        self.reads += 1
        if self.reads == self.fail_at:
            raise BackendUnavailable("timeout reading /api/ps")
        return await super().loaded()


async def test_one_failed_gpu_read_is_retried_not_a_free_for_all() -> None:
    agents = [agent("a", 6), agent("b", 6), agent("c", 6)]
    sim = Blip(agents, 8.0, time_scale=0.001, num_parallel=2)
    sched = GpuScheduler(sim, 8.0, settings(num_parallel=2))
    watch = Watch(sched, 8.0)
    specs = catalog_specs(agents)
    peak: Counter[str] = Counter()

    async def one(i: int) -> None:
        lease = await sched.acquire(CallRequest(f"t{i % 3}", {"abc"[i % 3]: 1.0}, specs))
        peak[lease.model] = max(peak[lease.model], sched.inflight[lease.model])
        async with lease:
            await chat(sim, lease.model)

    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(30))), 30)
    assert sim.reads > sim.fail_at  # the failure happened and was read past
    assert max(peak.values()) <= 2 and watch.violations == []
    assert not any(e.kind == "unscheduled" for e in sched.events)
    sched.close()


async def test_a_model_that_fits_now_is_not_held_up_by_another_swaps_drain() -> None:
    agents = [agent("a", 8), agent("b", 6.5), agent("c", 2)]
    sim = SimBackend(agents, 14.0, time_scale=0.001)
    sched = GpuScheduler(sim, 14.0, settings(max_wait_s=1.0, hold_s=0))
    specs = catalog_specs(agents)
    long_call = await sched.acquire(CallRequest("t1", {"a": 1.0}, specs))
    b = asyncio.create_task(sched.acquire(CallRequest("t2", {"b": 1.0}, specs)))  # a must drain for b
    await asyncio.sleep(0.1)
    c = await asyncio.wait_for(sched.acquire(CallRequest("t3", {"c": 1.0}, specs)), 1.0)  # 2 GB fit beside a now
    assert c.waited_s < 0.5
    c.release()
    long_call.release()
    (await asyncio.wait_for(b, 3)).release()
    sched.close()


async def test_the_backends_reported_size_outweighs_a_callers_catalog() -> None:
    agents = [agent("small", 2), agent("big", 10)]
    sim = SimBackend(agents, 14.0, time_scale=0.001)
    sched = GpuScheduler(sim, 14.0, settings(hold_s=0))
    specs = catalog_specs(agents)
    async with await sched.acquire(CallRequest("a", {"small": 1.0}, specs)) as lease:
        await chat(sim, lease.model)
    await sched.refresh()  # the backend reports small's real size
    await sim.unload("small")  # another client of the same Ollama drops it
    await sched.refresh()
    lying = catalog_specs([agent("small", 11), agent("big", 10)])
    busy = await sched.acquire(CallRequest("b", {"big": 1.0}, specs))
    again = await asyncio.wait_for(sched.acquire(CallRequest("c", {"small": 1.0}, lying)), 1.0)
    assert again.waited_s < 0.5 and "big" in sched.resident  # 2 + 10 fit: big is not drained for small
    again.release()
    busy.release()
    sched.close()


async def test_metrics_follow_the_queue_by_model_and_tenant_and_count_scheduler_loads() -> None:
    from prometheus_client import generate_latest

    from app.api.metrics import Metrics, scheduler_listener

    agents = [agent("x", 8, 5000), agent("y", 6)]
    sim = SimBackend(agents, 10.0, time_scale=0.001)
    sched = GpuScheduler(sim, 10.0, settings(hold_s=0, num_parallel=1))
    metrics = Metrics()
    sched.listeners.append(scheduler_listener(metrics, "gpu0", lambda: sched.queue))
    specs = catalog_specs(agents)
    busy = await sched.acquire(CallRequest("s", {"y": 1.0}, specs))
    auto = asyncio.create_task(sched.acquire(CallRequest("u", {"x": 0.9, "y": 0.85}, specs)))  # queued: y is busy
    await asyncio.sleep(0.05)
    text = generate_latest(metrics.registry).decode()
    assert 'swarm_scheduler_queue_depth{gpu="gpu0",model="x"} 1.0' in text
    assert 'swarm_scheduler_tenant_queue_depth{gpu="gpu0",tenant="u"} 1.0' in text
    busy.release()
    (await auto).release()  # served on y, its second choice: every gauge drops back to 0
    text = generate_latest(metrics.registry).decode()
    assert 'swarm_scheduler_queue_depth{gpu="gpu0",model="x"} 0.0' in text
    assert 'swarm_scheduler_tenant_queue_depth{gpu="gpu0",tenant="u"} 0.0' in text
    assert 'swarm_scheduler_loads_total{gpu="gpu0",model="y",reason="free_memory"} 1.0' in text
    sched.close()


async def test_tenant_weights_share_a_contended_gpu_in_proportion() -> None:
    agents = [agent("y", 6)]
    sim = SimBackend(agents, 10.0, time_scale=0.001)
    sched = GpuScheduler(sim, 10.0, settings(num_parallel=1, tenant_weights={"heavy": 3.0}))
    specs = catalog_specs(agents)
    first = await sched.acquire(CallRequest("light", {"y": 1.0}, specs))  # holds the only slot: the rest queue
    order: list[str] = []

    async def call(tenant: str) -> None:
        async with await sched.acquire(CallRequest(tenant, {"y": 1.0}, specs)):
            order.append(tenant)
            await asyncio.sleep(0.005)

    calls = [asyncio.create_task(call(t)) for _ in range(20) for t in ("light", "heavy")]
    await asyncio.sleep(0.05)
    first.release()
    await asyncio.wait_for(asyncio.gather(*calls), 10)
    assert 10 <= order[:16].count("heavy") <= 14  # about three in four while both wait (equal weights: 8)
    sched.close()


async def test_a_model_named_without_its_tag_is_the_catalogs_model() -> None:
    """Clients of Ollama often send `x` for `x:latest`: the scheduler treats both as one model, with its size."""
    agents = [agent("x:latest", 8), agent("y:latest", 8)]
    sim = SimBackend(agents, 10.0, time_scale=0.001)
    sched = GpuScheduler(sim, 10.0, settings(hold_s=0))
    watch = Watch(sched, 10.0)
    specs = catalog_specs(agents)
    for name in ("x", "y", "x:latest", "y", "x"):
        lease = await asyncio.wait_for(sched.acquire(CallRequest("t", {name: 1.0}, specs)), 3)
        assert lease.model == (name if name.endswith(":latest") else f"{name}:latest")
        async with lease:
            await chat(sim, lease.model)
    assert watch.violations == [] and set(sched.resident) <= {"x:latest", "y:latest"}
    evicts = sum(e.kind == "evict" for e in sched.events)
    assert evicts == 4 and sum(e.kind == "unload" for e in sim.events) == evicts  # every swap was the scheduler's
    sched.close()
