"""Domain records (pydantic): Agent, Subtask, RoutingProblem and the Plan a router returns."""

from __future__ import annotations

from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app.domain.knobs import RoutingParams

TaskType = Literal["code", "reasoning", "math", "creative", "extraction", "summarize"]
TASK_TYPES: tuple[str, ...] = get_args(TaskType)

_ID_PATTERN = r"^[A-Za-z0-9_.:\-]{1,64}$"
MAX_ORIGINAL_DIFFICULTY = 10.0  # the original decomposer accepted up to 10 on its 1..5 scale


def unit_difficulty(value: float) -> float:
    """Difficulty on the internal 0 (easy) .. 1 (hard) scale. A value above 1 is on the original tool's 1 (easy)
    .. 5 (hard) scale and maps to (d - 1) / 4, capped at 1; 0..1 is taken as the internal scale as is."""
    if value > 1.0:
        if value > MAX_ORIGINAL_DIFFICULTY:
            raise ValueError(
                f"difficulty {value:g} is outside 0..1 (internal scale) and 1..5 (original scale, up to "
                f"{MAX_ORIGINAL_DIFFICULTY:g} accepted)"
            )
        return min(1.0, (value - 1.0) / 4.0)
    return value


class Agent(BaseModel):
    """One model the router may pick, with its priors and its footprint on the GPU."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    name: str = Field(min_length=1, max_length=200)
    cost_per_token: float = Field(ge=0, le=1e6)
    max_ctx: int = Field(gt=0, le=100_000_000)
    capabilities: dict[TaskType, float]
    vram_gb: float = Field(gt=0, le=100_000)
    load_time_ms: float = Field(ge=0, le=86_400_000)
    # Decode speed used by the simulated GPU and for latency estimates.
    tokens_per_s: float = Field(default=40.0, gt=0, le=1e6)
    # Output length relative to the subtask's estimate (a verbose model writes more).
    token_multiplier: float = Field(default=1.0, gt=0, le=1000)
    # Can call tools (Ollama's "tools" capability): model="auto" routes requests that offer tools only to these.
    tools: bool = False

    @field_validator("capabilities")
    @classmethod
    def _caps_in_unit_interval(cls, caps: dict[str, float]) -> dict[str, float]:
        for task, value in caps.items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"capability for {task!r} is {value}, must be within [0, 1]")
        # A task type the file leaves out gets a neutral prior rather than a crash later.
        return {t: float(caps.get(t, 0.5)) for t in TASK_TYPES}

    def capability(self, task_type: str) -> float:
        return float(self.capabilities.get(task_type, 0.5))  # type: ignore[call-overload]


class Subtask(BaseModel):
    """One node of a job's DAG."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: str = Field(pattern=_ID_PATTERN)
    task_type: TaskType
    description: str = Field(default="", max_length=200_000)
    estimated_tokens: int = Field(default=256, ge=1, le=1_000_000)
    difficulty: float = Field(default=0.5, ge=0.0, le=1.0)
    deps: list[str] = Field(default_factory=list)
    # Tokens of the parents' outputs that the prompt will carry (set by the orchestrator for dependent nodes).
    input_tokens: int = Field(default=0, ge=0, le=1_000_000)

    @field_validator("difficulty", mode="before")
    @classmethod
    def _original_scale(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool) and value == value:  # NaN stays invalid
            return unit_difficulty(float(value))
        return value

    @property
    def context_tokens(self) -> int:
        """Rough context need: prompt (4 chars per token), the parents' outputs, and the expected output."""
        return len(self.description) // 4 + self.input_tokens + self.estimated_tokens


class RoutingProblem(BaseModel):
    """What a router decides over: the horizon's subtasks, the step each runs in, the GPU and its state."""

    model_config = ConfigDict(extra="forbid")

    subtasks: list[Subtask] = Field(min_length=1)
    # Step index per subtask id; 0 = ready now. Missing ids default to step 0.
    step_of: dict[str, int] = Field(default_factory=dict)
    agents: list[Agent] = Field(min_length=1)
    gpu_vram_gb: float = Field(gt=0)
    loaded: list[str] = Field(default_factory=list)
    params: RoutingParams = Field(default_factory=RoutingParams)

    @model_validator(mode="after")
    def _check(self) -> RoutingProblem:
        ids = [s.id for s in self.subtasks]
        if len(set(ids)) != len(ids):
            raise ValueError("duplicate subtask ids in routing problem")
        names = [a.name for a in self.agents]
        if len(set(names)) != len(names):
            raise ValueError("duplicate agent names in routing problem")
        for sid, step in self.step_of.items():
            if step < 0:
                raise ValueError(f"step_of[{sid!r}] is negative")
        return self

    def step(self, subtask_id: str) -> int:
        return self.step_of.get(subtask_id, 0)

    @property
    def n_steps(self) -> int:
        return 1 + max((self.step(s.id) for s in self.subtasks), default=0)


class Assignment(BaseModel):
    subtask_id: str
    model: str
    step: int = 0
    estimated_quality: float = 0.0
    token_cost: float = 0.0
    switch_cost: float = 0.0
    utility: float = 0.0


class SolverInfo(BaseModel):
    name: str
    status: str
    solve_time_ms: float
    # Set when the first solver failed and another one produced this plan.
    fallback_from: str | None = None
    # Set when the solve hit its time limit: the plan is the best found, `gap` its relative MIP gap.
    gap: float | None = None
    time_limit_s: float | None = None


class PlannerInfo(BaseModel):
    model: str | None = None
    latency_ms: float = 0.0
    prompt_tokens: int = 0
    eval_tokens: int = 0
    attempts: int = 0


class ModelEvent(BaseModel):
    model: str
    step: int


class Plan(BaseModel):
    """A router's decision, explained: who runs what, when, and what is resident at each step."""

    mode: str
    assignments: list[Assignment]
    resident_per_step: list[list[str]] = Field(default_factory=list)
    loads: list[ModelEvent] = Field(default_factory=list)
    evictions: list[ModelEvent] = Field(default_factory=list)
    vram_peak_gb: float = 0.0
    # > 0 only for lp_relaxed (parity with the original tool) or a broken planner answer that was used anyway.
    vram_violation_gb: float = 0.0
    objective: float = 0.0
    solver: SolverInfo | None = None
    routing_source: str = ""
    fallback_reason: str | None = None
    planner: PlannerInfo | None = None
    # Full estimate matrix: one row per (model, subtask) with quality, token_cost, switch_cost, utility.
    model_task_estimates: list[dict[str, Any]] = Field(default_factory=list)

    def model_for(self, subtask_id: str) -> str:
        for a in self.assignments:
            if a.subtask_id == subtask_id:
                return a.model
        raise KeyError(subtask_id)
