"""Per-step telemetry records and the job summary (models swapped in, switch time, VRAM peak, tokens)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from statistics import mean
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from app.backends.base import LoadedModel
from app.domain.models import Plan
from app.domain.status import SubtaskStatus

if TYPE_CHECKING:
    from app.execution.results import JobSpec, SubtaskResult
    from app.execution.state import GpuState


def _gb(models: Sequence[LoadedModel]) -> float:
    return round(sum(m.size_vram for m in models) / 1e9, 4)


@dataclass(frozen=True)
class StepObservation:
    """What one MPC step saw and did on the GPU, handed to StepLog.add."""

    step: int
    horizon: dict[str, int]
    ready: list[str]
    plan: Plan
    loads: dict[str, float]  # model -> measured load ms
    evicted: list[str]
    before: Sequence[LoadedModel]
    after: Sequence[LoadedModel]
    observed_mid_gb: float  # resident VRAM right after the step's loads


class StepRecord(BaseModel):
    """One plan step as telemetry records it (the `plan_step` event and JobResult.steps)."""

    step: int
    horizon_nodes: list[str]
    horizon_steps: dict[str, int]
    ready_now_nodes: list[str]
    routing_mode: str
    routing_source: str
    fallback_reason: str | None
    solver: dict[str, Any] | None
    lp_solver_name: str | None
    lp_solve_time_ms: float | None
    objective: float
    planner: dict[str, Any] | None
    planned_assignments: list[dict[str, Any]]
    executed_assignments: list[dict[str, Any]]
    resident_planned: list[list[str]]
    resident_before: list[str]
    resident_after: list[str]
    loads_planned: list[dict[str, Any]]
    evictions_planned: list[dict[str, Any]]
    evictions_done: list[str]
    models_swapped_in: list[str]
    measured_switch_ms: float
    estimated_switch_ms: float
    vram_peak_gb: float
    vram_planned_peak_gb: float
    vram_violation_gb: float
    model_task_estimates: list[dict[str, Any]]


class StepLog:
    def __init__(self) -> None:
        self.entries: list[StepRecord] = []
        # Resident VRAM seen around helper-LLM calls (decomposer, planner, synthesiser), outside the steps.
        self.helper_peak_gb = 0.0

    def observe_peak(self, resident_gb: float) -> None:
        self.helper_peak_gb = max(self.helper_peak_gb, round(resident_gb, 4))

    def add(self, obs: StepObservation, spec: JobSpec, results: dict[str, SubtaskResult]) -> StepRecord:
        plan, ready = obs.plan, obs.ready
        load_time = {a.name: a.load_time_ms for a in spec.agents}
        # A chat call that loaded its model itself (e.g. the explicit load failed) reports load_duration too.
        implicit = {
            results[sid].model or "": results[sid].load_ms
            for sid in ready
            if results[sid].load_ms > 1.0 and results[sid].model not in obs.loads
        }
        observed = {**obs.loads, **implicit}
        record = StepRecord(
            step=obs.step,
            horizon_nodes=list(obs.horizon),
            horizon_steps=obs.horizon,
            ready_now_nodes=ready,
            routing_mode=plan.mode,
            routing_source=plan.routing_source,
            fallback_reason=plan.fallback_reason,
            solver=plan.solver.model_dump() if plan.solver else None,
            lp_solver_name=plan.solver.name if plan.solver else None,
            lp_solve_time_ms=plan.solver.solve_time_ms if plan.solver else None,
            objective=plan.objective,
            planner=plan.planner.model_dump() if plan.planner else None,
            planned_assignments=[a.model_dump() for a in plan.assignments],
            executed_assignments=[a.model_dump() for a in plan.assignments if a.subtask_id in ready],
            resident_planned=plan.resident_per_step,
            resident_before=[m.name for m in obs.before],
            resident_after=[m.name for m in obs.after],
            loads_planned=[e.model_dump() for e in plan.loads],
            evictions_planned=[e.model_dump() for e in plan.evictions],
            evictions_done=obs.evicted,
            models_swapped_in=sorted(observed),
            measured_switch_ms=round(sum(observed.values()), 3),
            estimated_switch_ms=round(sum(load_time.get(m, 0.0) for m in observed), 3),
            vram_peak_gb=max(_gb(obs.before), obs.observed_mid_gb, _gb(obs.after)),
            vram_planned_peak_gb=plan.vram_peak_gb,
            vram_violation_gb=plan.vram_violation_gb,
            model_task_estimates=plan.model_task_estimates,
        )
        self.entries.append(record)
        return record

    def dumps(self) -> list[dict[str, Any]]:
        return [e.model_dump() for e in self.entries]


def role_fields(results: dict[str, SubtaskResult]) -> dict[str, Any]:
    """The original telemetry's role fields: a subtask's task type is its role; a role agent is 'role|model'."""
    ran = [r for r in results.values() if r.model and r.status != SubtaskStatus.PENDING]
    models = sorted({r.model or "" for r in ran})
    pairs = sorted({f"{r.task_type}|{r.model}" for r in ran})
    return {
        "active_models": models,
        "active_roles": sorted({r.task_type for r in ran}),
        "active_role_agents": pairs,
        "n_distinct_models": len(models),
        "n_role_agents": len(pairs),
    }


def job_start(spec: JobSpec, loaded_before: list[str]) -> dict[str, Any]:
    """The original `job_start` event: the job's routing configuration and the GPU state it starts from."""
    return {
        "routing_mode": spec.mode,
        "query": spec.query,
        "n_subtasks": len(spec.subtasks or []),
        "lambda_token": spec.params.lambda_token,
        "lambda_switch": spec.params.lambda_switch,
        "token_scale": spec.params.token_scale,
        "switch_t_scale_ms": spec.params.switch_t_scale_ms,
        "gpu_vram_gb": spec.gpu_vram_gb,
        "horizon_depth": spec.horizon_depth,
        "loaded_models_before": loaded_before,
    }


def job_costs(spec: JobSpec, summary: dict[str, Any], loaded_before: list[str]) -> dict[str, Any]:
    """The original `job_costs` event: the job's costs under the original names, after the job ran."""
    keys = ("active_models", "active_roles", "active_role_agents", "n_distinct_models", "n_role_agents", "job_score")
    return {
        "routing_mode": spec.mode,
        "lambda_token": spec.params.lambda_token,
        "lambda_switch": spec.params.lambda_switch,
        "token_scale": spec.params.token_scale,
        "switch_t_scale_ms": spec.params.switch_t_scale_ms,
        "gpu_vram_gb": spec.gpu_vram_gb,
        "loaded_models_before": loaded_before,
        "models_swapped_in": summary["models_swapped_in"],
        "estimated_switch_cost_ms": summary["estimated_switch_ms"],
        "sum_token_cost": summary["token_cost"],
        "vram_used_gb": summary["vram_peak_gb"],
        "vram_violation": summary["vram_violation"],
        **{k: summary[k] for k in keys},
    }


def summarize(
    spec: JobSpec, results: dict[str, SubtaskResult], log: StepLog, wall_ms: float, gpu: GpuState
) -> dict[str, Any]:
    agents = {a.name: a for a in spec.agents}
    done = [r for r in results.values() if r.status == SubtaskStatus.DONE]
    scores = [r.score for r in done if r.score is not None]
    token_cost = sum(
        agents[r.model].cost_per_token * r.eval_tokens / spec.params.token_scale for r in done if r.model in agents
    )
    entries = log.entries
    sources = [e.routing_source for e in entries]
    capacity = spec.gpu_vram_gb or gpu.capacity_gb
    peak = max([log.helper_peak_gb, *(e.vram_peak_gb for e in entries)])
    return {
        "routing_mode": spec.mode,
        "n_subtasks": len(results),
        "n_done": len(done),
        "n_plan_steps": len(entries),
        "task_to_model": {sid: r.model for sid, r in results.items()},
        "distinct_models": sorted({r.model for r in done if r.model}),
        "active_model_count": len({r.model for r in done if r.model}),
        "models_swapped_in": sum(len(e.models_swapped_in) for e in entries),
        "estimated_switch_ms": round(sum(e.estimated_switch_ms for e in entries), 3),
        "measured_switch_ms": round(sum(e.measured_switch_ms for e in entries), 3),
        "vram_peak_gb": peak,
        "vram_violation": peak > capacity + 1e-9,
        "planned_vram_violation_gb": max((e.vram_violation_gb for e in entries), default=0.0),
        "prompt_tokens": sum(r.prompt_tokens for r in results.values()),
        "eval_tokens": sum(r.eval_tokens for r in results.values()),
        "total_tokens": sum(r.prompt_tokens + r.eval_tokens for r in results.values()),
        "token_cost": round(token_cost, 6),
        "objective_per_step": [e.objective for e in entries],
        "solve_time_ms_per_step": [e.lp_solve_time_ms for e in entries if e.lp_solve_time_ms is not None],
        "routing_sources": sources,
        "fallback_count": sum(1 for s in sources if s.startswith("fallback")),
        "planner_latency_ms": round(sum((e.planner or {}).get("latency_ms", 0.0) for e in entries), 3),
        "sum_subtask_latency_ms": round(sum(r.latency_ms for r in results.values()), 3),
        "wall_ms": round(wall_ms, 3),
        **role_fields(results),
        "job_score": mean(scores) if scores else None,
        "success_rate": len(done) / len(results) if results else 0.0,
    }
