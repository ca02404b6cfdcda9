"""Job specs and results: what the orchestrator takes and returns (plain dataclasses)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from app.domain.knobs import RoutingParams
from app.domain.models import Agent, Subtask
from app.domain.status import JobStatus, SubtaskStatus, subtask_transition
from app.routing.registry import DEFAULT_MODE

ScoreFn = Callable[[Subtask, str], float | None]


@dataclass
class JobSpec:
    job_id: str
    agents: list[Agent]
    query: str | None = None
    subtasks: list[Subtask] | None = None
    mode: str = DEFAULT_MODE
    params: RoutingParams = field(default_factory=RoutingParams)
    horizon_depth: int = 1
    gpu_vram_gb: float | None = None  # None = the GPU's capacity
    planner_model: str | None = None
    planner_timeout_s: float = 120.0
    router_model: str | None = None  # pref_router's trained file and threshold
    router_tau: float = 0.5
    decomposer_model: str | None = None
    synth_model: str | None = None
    seed: int = 0
    synthesize: bool = True
    plan_source: str = "given"
    # Benchmark scoring: the only source of quality feedback for the estimator.
    score_fn: ScoreFn | None = None


@dataclass
class SubtaskResult:
    id: str
    task_type: str
    status: SubtaskStatus = SubtaskStatus.PENDING
    model: str | None = None
    step: int | None = None
    output: str | None = None
    error: str | None = None
    latency_ms: float = 0.0
    prompt_tokens: int = 0
    eval_tokens: int = 0
    load_ms: float = 0.0
    score: float | None = None
    estimated_quality: float | None = None
    utility: float | None = None

    def move(self, status: SubtaskStatus) -> None:
        """Change status along an allowed transition (IllegalTransition otherwise)."""
        self.status = subtask_transition(self.status, status)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class JobResult:
    job_id: str
    status: JobStatus
    subtasks: dict[str, SubtaskResult]
    steps: list[dict[str, Any]]
    summary: dict[str, Any]
    plan_source: str
    final_answer: str | None = None
    error: str | None = None
    model_task_estimates: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "status": self.status,
            "error": self.error,
            "plan_source": self.plan_source,
            "final_answer": self.final_answer,
            "subtasks": [r.to_dict() for r in self.subtasks.values()],
            "steps": self.steps,
            "summary": self.summary,
        }
