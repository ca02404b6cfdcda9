"""CPU-heavy work (route solves, report building, dry-run benchmarks) on bounded executors of its own, apart from
asyncio's default thread pool, which the database calls use: a burst of solves or benches never starves them."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from app.core.errors import Saturated

T = TypeVar("T")


class CpuPool:
    """A bounded thread pool with a bounded queue: `run` refuses (Saturated) when `workers + max_queue` calls
    are already pending, so a flood of solves is answered quickly instead of piling up."""

    def __init__(self, workers: int = 2, max_queue: int = 64, name: str = "swarm-cpu") -> None:
        self.workers = workers
        self.max_queue = max_queue
        self.pending = 0
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    @property
    def saturated(self) -> bool:
        return self.pending >= self.workers + self.max_queue

    def status(self) -> dict[str, Any]:
        busy = min(self.pending, self.workers)
        return {"workers": self.workers, "busy": busy, "queued": self.pending - busy, "saturated": self.saturated}

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if self.saturated:
            raise Saturated(f"the CPU executor is saturated ({self.pending} calls pending); retry shortly")
        self.pending += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, partial(fn, *args, **kwargs))
        finally:
            self.pending -= 1

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


_default: dict[str, CpuPool] = {}


def cpu_pool() -> CpuPool:
    """The process's CPU pool (the service installs its configured one at start-up)."""
    if "cpu" not in _default:
        _default["cpu"] = CpuPool()
    return _default["cpu"]


def install_cpu_pool(pool: CpuPool) -> None:
    """The pool run_cpu uses from now on (a previous one stays usable by whoever holds it)."""
    _default["cpu"] = pool


def uninstall_cpu_pool(pool: CpuPool) -> None:
    """Shut `pool` down; run_cpu falls back to a fresh default pool if it was the installed one."""
    if _default.get("cpu") is pool:
        _default.pop("cpu")
    pool.shutdown()


# True inside a dry-run benchmark's private event loop: it already owns a worker thread, so its solves run inline.
INLINE: contextvars.ContextVar[bool] = contextvars.ContextVar("swarm_cpu_inline", default=False)


async def run_cpu(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    if INLINE.get():
        return fn(*args, **kwargs)
    return await cpu_pool().run(fn, *args, **kwargs)


class BenchSlots:
    """How many benchmark runs may execute at once, per tenant and overall; the others wait (status `queued`)."""

    def __init__(self, total: int = 2, per_tenant: int = 1) -> None:
        self.total = total
        self.per_tenant = per_tenant
        self._running: dict[str, int] = defaultdict(int)
        self._changed = asyncio.Condition()
        self.peak = 0  # the most runs ever executing at once

    def _free(self, tenant_id: str) -> bool:
        return sum(self._running.values()) < self.total and self._running[tenant_id] < self.per_tenant

    @contextlib.asynccontextmanager
    async def hold(self, tenant_id: str) -> AsyncIterator[None]:
        async with self._changed:
            await self._changed.wait_for(lambda: self._free(tenant_id))
            self._running[tenant_id] += 1
            self.peak = max(self.peak, self.running())
        try:
            yield
        finally:
            async with self._changed:
                self._running[tenant_id] -= 1
                self._changed.notify_all()

    def running(self) -> int:
        return sum(self._running.values())
