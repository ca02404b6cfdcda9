"""Per-job artifacts in the original tool's layout (plan, assignments, estimates, oracle, results, evaluations)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from app.domain.status import SubtaskStatus
from app.execution.results import JobResult
from app.execution.steps import role_fields


def _executed(result: JobResult) -> list[dict[str, Any]]:
    """The assignment each subtask actually ran under (from the step that executed it), with its step's source."""
    out = []
    for step in result.steps:
        for a in step.get("executed_assignments", []):
            out.append({**a, "routing_source": step.get("routing_source")})
    return out


def oracle(result: JobResult) -> dict[str, Any]:
    """Per subtask, the best feasible model by estimated quality and by utility, from the estimates of the step
    that ran it; chosen_utility sums the chosen cells' utilities."""
    by_quality: dict[str, str] = {}
    by_utility: dict[str, str] = {}
    chosen = 0.0
    for step in result.steps:
        ran = {a["subtask_id"]: a["model"] for a in step.get("executed_assignments", [])}
        rows = [r for r in step.get("model_task_estimates", []) if r["subtask_id"] in ran]
        for sid, model in ran.items():
            cells = [r for r in rows if r["subtask_id"] == sid and r.get("feasible", True)]
            if not cells:
                continue
            by_quality[sid] = max(cells, key=lambda r: r["quality"])["model"]
            by_utility[sid] = max(cells, key=lambda r: r["utility"])["model"]
            chosen += sum(float(r["utility"]) for r in cells if r["model"] == model)
    return {
        "best_per_task_by_quality": by_quality,
        "best_per_task_by_utility": by_utility,
        "chosen_utility": round(chosen, 6),
    }


def job_artifact(result: JobResult, *, run_id: str, query: str | None, routing_mode: str) -> dict[str, Any]:
    """The fields every artifact has, whether the job came from `swarm run` or a benchmark."""
    executed = _executed(result)
    s = result.summary
    sources = sorted({str(st.get("routing_source")) for st in result.steps})
    planners = [st["planner"].get("model") for st in result.steps if st.get("planner")]
    roles = role_fields(result.subtasks)
    assignments = [
        {
            "subtask_id": a["subtask_id"],
            "agent": a["model"],
            "mode": a["routing_source"],
            "step": a.get("step", 0),
            "estimated_performance": a.get("estimated_quality"),
            "estimated_token_cost": a.get("token_cost"),
            "estimated_switch_cost": a.get("switch_cost"),
            "utility": a.get("utility"),
        }
        for a in executed
    ]
    results = [
        {
            "subtask_id": r.id,
            "agent": r.model,
            "output": r.output,
            "latency_ms": round(r.latency_ms, 3),
            "prompt_tokens": r.prompt_tokens,
            "completion_tokens": r.eval_tokens,
            "success": r.status == SubtaskStatus.DONE and bool(r.output),
            "status": r.status,
            "error": r.error,
            "swapped_in_for_job": r.load_ms > 1.0,
            "score": r.score,
        }
        for r in result.subtasks.values()
    ]
    loaded_before = result.steps[0].get("resident_before", []) if result.steps else []
    return {
        "run_id": run_id,
        "job_id": result.job_id,
        "routing_mode": routing_mode,
        "routing_source": "+".join(sources),
        "query": query,
        "status": result.status,
        "error": result.error,
        "plan_source": result.plan_source,
        "assignments": assignments,
        "orchestration": {
            "routing_mode": routing_mode,
            "routing_source": "+".join(sources),
            "planner_model": planners[0] if planners else None,
            "assignments": [{"subtask_id": a["subtask_id"], "model": a["agent"]} for a in assignments],
            "active_models": roles["active_models"],
            "active_role_agents": roles["active_role_agents"],
        },
        "results": results,
        "final_answer": result.final_answer,
        **roles,
        "loaded_models_before": loaded_before,
        "loaded_models_at_router": loaded_before,
        "model_task_estimates": [row for st in result.steps for row in st.get("model_task_estimates", [])],
        "oracle": oracle(result),
        "plan_steps": result.steps,
        "vram_used_gb": s.get("vram_peak_gb"),
        "vram_violation": s.get("vram_violation"),
        "job_score": s.get("job_score"),
    }


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n", encoding="utf-8")
