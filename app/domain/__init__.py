"""Pure data shared by every layer: agents, subtasks, routing problems and plans."""

from app.domain.knobs import GpuVramGb, KnobOverrides, RoutingKnobs, RoutingParams
from app.domain.models import (
    TASK_TYPES,
    Agent,
    Assignment,
    ModelEvent,
    Plan,
    PlannerInfo,
    RoutingProblem,
    SolverInfo,
    Subtask,
    TaskType,
)

__all__ = [
    "TASK_TYPES",
    "Agent",
    "Assignment",
    "GpuVramGb",
    "KnobOverrides",
    "ModelEvent",
    "Plan",
    "PlannerInfo",
    "RoutingKnobs",
    "RoutingParams",
    "RoutingProblem",
    "SolverInfo",
    "Subtask",
    "TaskType",
]
