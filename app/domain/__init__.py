"""Pure data shared by every layer: agents, subtasks, routing problems and plans."""

from app.domain.models import (
    TASK_TYPES,
    Agent,
    Assignment,
    ModelEvent,
    Plan,
    PlannerInfo,
    RoutingMode,
    RoutingParams,
    RoutingProblem,
    SolverInfo,
    Subtask,
    TaskType,
)

__all__ = [
    "TASK_TYPES",
    "Agent",
    "Assignment",
    "ModelEvent",
    "Plan",
    "PlannerInfo",
    "RoutingMode",
    "RoutingParams",
    "RoutingProblem",
    "SolverInfo",
    "Subtask",
    "TaskType",
]
