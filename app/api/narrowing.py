"""What one request may ask for: narrowing (never widening) its tenant's GPU and catalog, and a bounded problem size."""

from __future__ import annotations

from dataclasses import dataclass

from app.core.errors import ValidationFailed
from app.domain.models import Agent


class WidensTenant(ValidationFailed):
    """A request asked for more than its tenant is configured with; `field` names the offending input."""

    code = "exceeds_tenant_config"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class TooLarge(WidensTenant):
    code = "problem_too_large"


@dataclass(frozen=True)
class Narrowed:
    gpu_vram_gb: float
    agents: list[Agent]


def narrow(
    tenant_gb: float,
    catalog: list[Agent],
    gpu_vram_gb: float | None,
    agents: list[Agent] | None,
    *,
    hypothetical: bool = False,
) -> Narrowed:
    """The budget and catalog a request may use. Without `hypothetical` the request's G must not exceed the
    tenant's and each inline agent must be a catalog model that claims no less VRAM and no larger context than the
    catalog says (its priors may differ). Hypothetical requests are decisions only and may explore anything."""
    g = tenant_gb if gpu_vram_gb is None else gpu_vram_gb
    if hypothetical:
        return Narrowed(g, agents or catalog)
    if g > tenant_gb + 1e-9:
        raise WidensTenant(
            "gpu_vram_gb",
            f"{g:g} GB exceeds the tenant's GPU budget of {tenant_gb:g} GB "
            '(a request may only narrow it; /route accepts "hypothetical": true for a decision-only what-if)',
        )
    if agents is None:
        return Narrowed(g, catalog)
    known = {a.name: a for a in catalog}
    for i, agent in enumerate(agents):
        base = known.get(agent.name)
        if base is None:
            raise WidensTenant(f"agents.{i}.name", f"model {agent.name!r} is not in the tenant's catalog")
        if agent.vram_gb < base.vram_gb:
            raise WidensTenant(
                f"agents.{i}.vram_gb",
                f"{agent.vram_gb:g} GB understates {agent.name!r} (the catalog says {base.vram_gb:g} GB)",
            )
        if agent.max_ctx > base.max_ctx:
            raise WidensTenant(
                f"agents.{i}.max_ctx",
                f"{agent.max_ctx} exceeds {agent.name!r}'s context in the catalog ({base.max_ctx})",
            )
    return Narrowed(g, agents)


def check_size(n_agents: int, n_subtasks: int, max_cells: int) -> None:
    """One routing problem is at most `max_cells` (agents x subtasks) big (SWARM_ROUTE_MAX_CELLS)."""
    if n_agents * n_subtasks > max_cells:
        raise TooLarge(
            "subtasks",
            f"{n_subtasks} subtasks x {n_agents} agents = {n_agents * n_subtasks} routing cells exceeds the limit "
            f"of {max_cells} (SWARM_ROUTE_MAX_CELLS); split the work or narrow the catalog",
        )
