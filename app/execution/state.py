"""Loaded-models state per backend (a GPU): read from the backend's truth, one lock per GPU."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from app.backends.base import Backend, LoadedModel


@dataclass
class GpuState:
    """One GPU. `lock` serialises plan-and-load so concurrent jobs cannot overcommit its VRAM."""

    backend: Backend
    capacity_gb: float
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    resident: list[LoadedModel] = field(default_factory=list)
    refreshed_at: float = 0.0
    peak_resident_gb: float = 0.0

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
    ) -> None:
        self.default = GpuState(default, capacity_gb)
        self._remote_factory = remote_factory
        self._remote: dict[str, GpuState] = {}

    def get(self, backend_url: str | None, capacity_gb: float | None = None) -> GpuState:
        if not backend_url or self._remote_factory is None:
            return self.default
        key = backend_url.rstrip("/")
        state = self._remote.get(key)
        if state is None:
            state = GpuState(self._remote_factory(key), capacity_gb or self.default.capacity_gb)
            self._remote[key] = state
        return state

    def all(self) -> list[GpuState]:
        return [self.default, *self._remote.values()]

    async def aclose(self) -> None:
        for state in self.all():
            await state.backend.aclose()
