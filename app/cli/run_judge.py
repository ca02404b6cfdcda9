"""`swarm run --judge`: an LLM judge scores each finished subtask; score and rationale go to telemetry and files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.bench.judge import judge
from app.domain.models import Agent
from app.domain.status import SubtaskStatus
from app.execution.calls import catalog_specs
from app.execution.llm import bind_chat
from app.execution.results import JobResult
from app.execution.sched_types import CallRequest
from app.execution.state import GpuState
from app.execution.telemetry import Recorder
from app.routing import Estimator


@dataclass(frozen=True)
class Evaluation:
    subtask_id: str
    success: bool
    judge_score: float | None
    judge_rationale: str | None
    judge_error: str | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "subtask_id": self.subtask_id,
            "success": self.success,
            "judge_score": self.judge_score,
            "judge_rationale": self.judge_rationale,
            "judge_error": self.judge_error,
        }


async def judge_job(
    gpu: GpuState,
    result: JobResult,
    descriptions: dict[str, str],
    *,
    model: str,
    agents: list[Agent],
    recorder: Recorder,
    estimator: Estimator,
    difficulty: dict[str, float],
    keep_alive: str | int = "10m",
) -> list[Evaluation]:
    """Judge every done subtask of the job (never fatal: failures land in judge_error). Each verdict is a `judge`
    event with the rationale beside the score, and (as in the original) the score teaches the estimator."""
    out: list[Evaluation] = []
    # The judge model is a call like any other: the GPU's scheduler makes room for it.
    specs = catalog_specs(agents)
    lease = await gpu.scheduler.acquire(CallRequest(recorder.tenant_id, {model: 1.0}, specs, kind="helper"))
    async with lease:
        chat = bind_chat(gpu.backend, model, keep_alive)
        for sid, res in result.subtasks.items():
            if res.status != SubtaskStatus.DONE:
                ev = Evaluation(sid, False, None, None, f"not judged: subtask {res.status}")
            else:
                verdict = await judge(chat, descriptions.get(sid, ""), res.output or "")
                ev = Evaluation(sid, True, verdict.score, verdict.rationale or None, verdict.error)
                if verdict.score is not None and res.model:
                    estimator.observe_score(res.model, res.task_type, verdict.score, difficulty=difficulty.get(sid, 0))
            out.append(ev)
            await recorder.event("judge", result.job_id, {"judge_model": model, **ev.to_dict()})
        await gpu.refresh()
    return out
