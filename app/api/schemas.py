"""Request bodies of our own endpoints (validated; errors name the field)."""

from __future__ import annotations

from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.domain.knobs import GpuVramGb, KnobOverrides
from app.domain.models import Agent, Subtask
from app.routing.registry import ModeName


def unique_names(agents: list[Agent] | None) -> list[Agent] | None:
    seen: set[str] = set()
    for i, agent in enumerate(agents or []):
        if agent.name in seen:
            raise ValueError(f"agents.{i}.name: duplicate agent name {agent.name!r}")
        seen.add(agent.name)
    return agents


class RoutingRequest(KnobOverrides):
    """What /route and /jobs share: the mode, the knobs (None = the service's defaults), a catalog, a seed."""

    routing: ModeName | None = None
    agents: list[Agent] | None = Field(default=None, min_length=1, max_length=64)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)

    _unique_agents = field_validator("agents")(unique_names)


class RouteRequest(RoutingRequest):
    subtasks: list[Subtask] = Field(min_length=1, max_length=500)
    loaded_models: list[str] | None = Field(default=None, max_length=64)
    # Decision only, for what-ifs beyond the tenant's GPU or catalog; echoed in the response. Jobs never are.
    hypothetical: bool = False


class JobRequest(RoutingRequest):
    query: str | None = Field(default=None, min_length=1, max_length=50_000)
    subtasks: list[Subtask] | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_input(self) -> JobRequest:
        if (self.query is None) == (self.subtasks is None):
            raise ValueError("give exactly one of 'query' or 'subtasks'")
        for i, sub in enumerate(self.subtasks or []):
            if not sub.description.strip():
                raise ValueError(f"subtasks.{i}.description: a subtask to execute needs a description (the prompt)")
        return self


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
    backend_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+.*$", max_length=500)
    gpu_vram_gb: GpuVramGb | None = None
    agents: list[Agent] | None = Field(default=None, min_length=1, max_length=64)
    agents_file: str | None = Field(default=None, max_length=1000)
    token_budget: int | None = Field(default=None, ge=0, le=2**62)

    _unique_agents = field_validator("agents")(unique_names)

    @field_validator("backend_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.isascii():
            raise ValueError("must be an ASCII URL (write an international host name in punycode)")
        try:
            parsed = urlparse(value)
            port = parsed.port  # raises ValueError when out of range
        except ValueError as exc:
            raise ValueError(f"not a valid URL: {exc}") from None
        if not parsed.hostname or (port is not None and port == 0):
            raise ValueError("must be an http(s) URL with a host, like http://gpu-box:11434")
        return value.rstrip("/")
