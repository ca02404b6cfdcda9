"""Per GPU (one backend): its loaded-models state, read from the backend's truth, and its call scheduler."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.backends.base import Backend, LoadedModel
from app.core.settings import SchedulerSettings
from app.domain.knobs import RoutingParams
from app.execution.scheduler import GpuScheduler


@dataclass
class GpuState:
    """One GPU. Every model call on it goes through `scheduler`, which alone loads and evicts."""

    backend: Backend
    capacity_gb: float
    scheduler_settings: SchedulerSettings = field(default_factory=SchedulerSettings)
    keep_alive: str | int = "10m"
    routing: RoutingParams | None = None  # the objective whose switch cost the scheduler weighs
    resident: list[LoadedModel] = field(default_factory=list)
    refreshed_at: float = 0.0
    peak_resident_gb: float = 0.0
    scheduler: GpuScheduler = field(init=False)

    def __post_init__(self) -> None:
        self.scheduler = GpuScheduler(
            self.backend, self.capacity_gb, self.scheduler_settings, keep_alive=self.keep_alive, routing=self.routing
        )

    async def refresh(self) -> list[LoadedModel]:
        """Ask the backend what is loaded (Ollama: /api/ps). Never guessed from the plan."""
        self.resident = await self.backend.loaded()
        self.refreshed_at = time.time()
        self.peak_resident_gb = max(self.peak_resident_gb, self.resident_gb)
        return self.resident

    @property
    def loaded_names(self) -> list[str]:
        return [m.name for m in self.resident]

    @property
    def resident_gb(self) -> float:
        return sum(m.size_vram for m in self.resident) / 1e9


class BackendPool:
    """Maps tenants to GPUs: the shared default one, or one per bound Ollama URL (shared by tenants on it)."""

    def __init__(
        self,
        default: Backend,
        capacity_gb: float,
        remote_factory: Callable[[str], Backend] | None = None,
        *,
        scheduler: SchedulerSettings | None = None,
        keep_alive: str | int = "10m",
        routing: RoutingParams | None = None,
    ) -> None:
        self._sched = scheduler or SchedulerSettings()
        self._keep_alive = keep_alive
        self._routing = routing
        self.default = GpuState(default, capacity_gb, self._sched, keep_alive, routing)
        self._remote_factory = remote_factory
        # Called with every GPU, now and as remote ones appear (e.g. to attach metrics to its scheduler).
        self.on_gpu: list[Callable[[GpuState], None]] = []
        self._remote: dict[str, GpuState] = {}

    def get(self, backend_url: str | None, capacity_gb: float | None = None) -> GpuState:
        if not backend_url or self._remote_factory is None:
            return self.default
        key = backend_url.rstrip("/")
        state = self._remote.get(key)
        if state is None:
            capacity = capacity_gb or self.default.capacity_gb
            state = GpuState(self._remote_factory(key), capacity, self._sched, self._keep_alive, self._routing)
            for hook in self.on_gpu:
                hook(state)
            self._remote[key] = state
        return state

    def all(self) -> list[GpuState]:
        return [self.default, *self._remote.values()]

    async def aclose(self) -> None:
        for state in self.all():
            state.scheduler.close()
            await state.backend.aclose()
