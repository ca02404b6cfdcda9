"""SQLModel tables (and nothing else): tenants, jobs, subtasks, plan steps, bench runs, telemetry events."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def now() -> float:
    return time.time()


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(index=True, unique=True, max_length=200)
    # sha256 of the API key; the key itself is shown once at creation and never stored.
    key_hash: str | None = Field(default=None, index=True, unique=True, max_length=64)
    key_prefix: str | None = Field(default=None, max_length=16)
    backend_url: str | None = Field(default=None, max_length=500)
    gpu_vram_gb: float | None = None
    agents: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))
    agents_file: str | None = Field(default=None, max_length=1000)
    token_budget: int | None = None
    tokens_used: int = 0
    created_at: float = Field(default_factory=now)


class Job(SQLModel, table=True):
    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_tenant_status", "tenant_id", "status"),)

    id: str = Field(primary_key=True, max_length=64)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=64)
    status: str = Field(default="queued", max_length=20)
    query: str | None = Field(default=None, sa_column=Column(Text))
    spec: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    routing: str = Field(default="lp", max_length=20)  # = routing.registry.DEFAULT_MODE (a test keeps them equal)
    plan_source: str | None = Field(default=None, max_length=20)
    final_answer: str | None = Field(default=None, sa_column=Column(Text))
    error: str | None = Field(default=None, sa_column=Column(Text))
    summary: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    total_tokens: int = 0
    wall_ms: float | None = None
    created_at: float = Field(default_factory=now, index=True)
    started_at: float | None = None
    finished_at: float | None = None
    # The process running it and its last sign of life: only a job whose owner is gone is swept at a start.
    owner_id: str | None = Field(default=None, max_length=64)
    heartbeat_at: float | None = None


class SubtaskRecord(SQLModel, table=True):
    __tablename__ = "subtasks"
    __table_args__ = (UniqueConstraint("job_id", "subtask_id", name="uq_subtasks_job_subtask"),)

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="jobs.id", index=True, max_length=64)
    subtask_id: str = Field(max_length=64)
    task_type: str = Field(max_length=20)
    description: str = Field(default="", sa_column=Column(Text))
    deps: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    estimated_tokens: int = 0
    difficulty: float = 0.5
    status: str = Field(default="pending", max_length=20)
    model: str | None = Field(default=None, max_length=200)
    step: int | None = None
    output: str | None = Field(default=None, sa_column=Column(Text))
    latency_ms: float | None = None
    prompt_tokens: int = 0
    eval_tokens: int = 0
    load_ms: float = 0.0
    estimated_quality: float | None = None
    utility: float | None = None
    score: float | None = None
    error: str | None = Field(default=None, sa_column=Column(Text))


class PlanStepRecord(SQLModel, table=True):
    __tablename__ = "plan_steps"

    id: int | None = Field(default=None, primary_key=True)
    job_id: str = Field(foreign_key="jobs.id", index=True, max_length=64)
    step_index: int
    horizon: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    ready: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    mode: str = Field(max_length=20)
    routing_source: str | None = Field(default=None, max_length=40)
    solver_name: str | None = Field(default=None, max_length=40)
    solver_status: str | None = Field(default=None, max_length=40)
    solve_time_ms: float | None = None
    objective: float | None = None
    assignments: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    resident: list[list[str]] = Field(default_factory=list, sa_column=Column(JSON))
    loads: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    evictions: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    vram_peak_gb: float | None = None
    created_at: float = Field(default_factory=now)


class BenchRun(SQLModel, table=True):
    __tablename__ = "bench_runs"

    id: str = Field(primary_key=True, max_length=64)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=64)
    status: str = Field(default="queued", max_length=20)
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    progress: float = 0.0
    output_dir: str | None = Field(default=None, max_length=1000)
    report: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON))
    error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: float = Field(default_factory=now)
    finished_at: float | None = None
    owner_id: str | None = Field(default=None, max_length=64)
    heartbeat_at: float | None = None


class TelemetryEvent(SQLModel, table=True):
    """Append-only event log; the JSONL export streams these rows."""

    __tablename__ = "telemetry_events"
    __table_args__ = (Index("ix_telemetry_tenant_ts", "tenant_id", "ts"),)

    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=64)
    job_id: str | None = Field(default=None, index=True, max_length=64)
    ts: float = Field(default_factory=now)
    event_type: str = Field(index=True, max_length=40)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class EstimatorState(SQLModel, table=True):
    """The service's learned estimator state per catalog (keyed by its model names), so learning survives
    restarts."""

    __tablename__ = "estimator_states"

    catalog: str = Field(primary_key=True, max_length=64)
    models: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    state: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    updated_at: float = Field(default_factory=now)
