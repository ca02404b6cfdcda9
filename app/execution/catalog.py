"""Catalog reconciliation: which catalog models each backend has installed (/api/tags), re-read on a timer, after
pulls and deletes, and before an explicit request for a model not seen yet."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from app.backends.base import JSON, Backend
from app.core.errors import AgentFileError, ModelNotFound, SwarmError
from app.domain.models import Agent
from app.routing.agents import parse_agents
from app.routing.derived import agent_from_tag, tag_name

log = logging.getLogger("swarm.catalog")
MISS_RECHECK_S = 2.0  # an explicit request for an unseen model re-reads /api/tags at most this often


def canonical(name: str) -> str:
    """Ollama's name for a tag: `llama3` is `llama3:latest`."""
    return name if ":" in name else f"{name}:latest"


def pull_hint(model: str) -> str:
    return f"pull it with `ollama pull {model}` or `swarm models --ensure`"


@dataclass(frozen=True)
class Inventory:
    """What one backend has installed, as last read; `error` when the last read failed (models kept from before)."""

    backend: str
    models: dict[str, JSON]  # canonical name -> /api/tags entry
    checked_at: float
    error: str | None = None
    rejected: tuple[str, ...] = ()  # rows without a usable model name: why

    def has(self, name: str) -> bool:
        return canonical(name) in self.models


@dataclass(frozen=True)
class Reconciled:
    """A catalog against a backend's inventory. `known` is False while the inventory was never read: then every
    catalog model counts as routable (the backend's own answer decides)."""

    routable: list[Agent]
    missing: list[str]
    extra: list[str]  # installed, not in the catalog
    offered: list[str]  # extra models offered with derived defaults
    known: bool
    checked_at: float = 0.0
    error: str | None = None
    skipped: list[str] = field(default_factory=list)  # installed models not offered: why (bad /api/tags rows)

    @property
    def none_installed(self) -> bool:
        return self.known and not self.routable

    def view(self) -> dict[str, Any]:
        return {
            "known": self.known,
            "routable": [a.name for a in self.routable],
            "missing": self.missing,
            "installed_not_in_catalog": self.extra,
            "offered_with_derived_defaults": self.offered,
            "installed_not_offered": self.skipped,
            "checked_at": self.checked_at or None,
            "error": self.error,
        }

    def no_model_error(self, backend: str) -> ModelNotFound:
        first = self.missing[0] if self.missing else "MODEL"
        return ModelNotFound(
            first,
            f"none of the catalog's models is installed on {backend} (missing: {', '.join(self.missing)}); "
            + pull_hint(first),
        )


@dataclass
class CatalogWatch:
    """Inventories per backend (keyed by the backend's name). `offer_installed` routes installed models that the
    catalog does not name, with defaults derived from their size."""

    offer_installed: bool = False
    inventories: dict[str, Inventory] = field(default_factory=dict)
    _cache: dict[tuple[str, int], tuple[float, list[Agent], Reconciled]] = field(default_factory=dict)

    async def refresh(self, backend: Backend) -> Inventory:
        """Re-read /api/tags; a failure keeps the previous models and records the error."""
        previous = self.inventories.get(backend.name)
        try:
            tags = await backend.installed()
        except SwarmError as exc:
            log.warning("reading installed models of %s failed: %s", backend.name, exc.message)
            models = previous.models if previous else {}
            inv = Inventory(backend.name, models, previous.checked_at if previous else 0.0, exc.message)
        else:
            models, rejected = {}, []
            for tag in tags:
                try:
                    models[canonical(tag_name(tag))] = tag
                except AgentFileError as exc:  # a row without a usable name: reported, never fatal
                    rejected.append(exc.message[:300])
            inv = Inventory(backend.name, models, time.time(), rejected=tuple(rejected))
        self.inventories[backend.name] = inv
        return inv

    def inventory(self, backend: Backend) -> Inventory | None:
        inv = self.inventories.get(backend.name)
        return inv if inv is not None and inv.checked_at > 0 else None

    async def current(self, backend: Backend, agents: list[Agent]) -> Reconciled:
        """reconcile(), reading the backend's inventory first if it was never tried (a tenant's own Ollama)."""
        if backend.name not in self.inventories:
            await self.refresh(backend)
        return self.reconcile(backend, agents)

    def reconcile(self, backend: Backend, agents: list[Agent]) -> Reconciled:
        inv = self.inventory(backend)
        if inv is None:
            error = self.inventories[backend.name].error if backend.name in self.inventories else None
            return Reconciled(list(agents), [], [], [], False, error=error)
        # Keyed by the catalog list itself (a request's inline agents share names with the catalog but carry their
        # own priors): a hit must be the very list it was made for.
        key = (backend.name, id(agents))
        hit = self._cache.get(key)
        if hit is not None and hit[0] == inv.checked_at and hit[1] is agents:
            return hit[2]
        rec = self._reconcile(inv, agents)
        self._cache[key] = (inv.checked_at, agents, rec)
        if len(self._cache) > 256:
            self._cache.pop(next(iter(self._cache)))
        return rec

    def _reconcile(self, inv: Inventory, agents: list[Agent]) -> Reconciled:
        routable = [a for a in agents if inv.has(a.name)]
        missing = [a.name for a in agents if not inv.has(a.name)]
        named = {canonical(a.name) for a in agents}
        extra = sorted(str(t.get("name") or name) for name, t in inv.models.items() if name not in named)
        offered: list[str] = []
        skipped = list(inv.rejected)
        if self.offer_installed and extra:
            derived, bad = _derived_agents(inv.models[canonical(n)] for n in extra)
            routable += derived
            offered = [a.name for a in derived]
            skipped += bad
        return Reconciled(routable, missing, extra, offered, True, inv.checked_at, inv.error, skipped)

    async def check_model(self, backend: Backend, model: str) -> None:
        """An explicit request: ModelNotFound (404, naming the model and how to pull it) when the backend's
        inventory is known and lacks the model, after one fresh look (someone may have just pulled it)."""
        if backend.name not in self.inventories:
            await self.refresh(backend)
        inv = self.inventory(backend)
        if inv is None or inv.has(model):
            return
        if time.time() - inv.checked_at > MISS_RECHECK_S:
            inv = await self.refresh(backend)
            if inv.has(model):
                return
        raise ModelNotFound(model, f"model '{model}' is not installed on {backend.name}: " + pull_hint(model))

    async def watch(self, backends: Callable[[], Iterable[Backend]], interval_s: float) -> None:
        """Re-read every backend's inventory forever (a task owned by the runtime)."""
        while True:
            await asyncio.sleep(interval_s)
            for backend in list(backends()):
                await self.refresh(backend)


def _derived_agents(tags: Iterable[JSON]) -> tuple[list[Agent], list[str]]:
    """Agents for installed models the catalog does not name, and why each odd /api/tags row was skipped."""
    out: list[Agent] = []
    skipped: list[str] = []
    for tag in tags:
        try:
            out.extend(parse_agents([agent_from_tag(tag)], source="installed model"))
        except (AgentFileError, ValueError, TypeError, OverflowError) as exc:  # skipped and reported, never fatal
            reason = exc.message if isinstance(exc, AgentFileError) else f"{type(exc).__name__}: {exc}"
            log.warning("installed model not offered: %s", reason)
            skipped.append(reason[:300])
    return out, skipped
