"""Request bodies of our own endpoints (validated; errors name the field)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.domain.models import Agent, Subtask

ApiRouting = Literal["lp", "lp_relaxed", "llm", "greedy", "random"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]


class RoutingKnobs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    routing: ApiRouting | None = None
    gpu_vram_gb: float | None = Field(default=None, gt=0, le=4096)
    lambda_token: float | None = Field(default=None, ge=0, le=1000)
    lambda_switch: float | None = Field(default=None, ge=0, le=1000)
    token_scale: float | None = Field(default=None, gt=0)
    switch_t_scale_ms: float | None = Field(default=None, gt=0)
    horizon_depth: int | None = Field(default=None, ge=0, le=64)
    agents: list[Agent] | None = Field(default=None, min_length=1, max_length=64)
    seed: int = Field(default=0, ge=0)


class RouteRequest(RoutingKnobs):
    subtasks: list[Subtask] = Field(min_length=1, max_length=500)
    loaded_models: list[str] | None = Field(default=None, max_length=64)


class JobRequest(RoutingKnobs):
    query: str | None = Field(default=None, min_length=1, max_length=50_000)
    subtasks: list[Subtask] | None = Field(default=None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_input(self) -> JobRequest:
        if (self.query is None) == (self.subtasks is None):
            raise ValueError("give exactly one of 'query' or 'subtasks'")
        return self


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.\-]+$")
    backend_url: str | None = Field(default=None, pattern=r"^https?://[^\s/]+.*$", max_length=500)
    gpu_vram_gb: float | None = Field(default=None, gt=0, le=4096)
    agents: list[Agent] | None = Field(default=None, min_length=1, max_length=64)
    agents_file: str | None = Field(default=None, max_length=1000)
    token_budget: int | None = Field(default=None, ge=0)
