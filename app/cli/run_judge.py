"""`swarm run --judge`: an LLM judge scores each finished subtask; score and rationale go to telemetry and files."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.bench.judge import judge
from app.domain.models import Agent
from app.domain.status import SubtaskStatus
from app.execution.llm import bind_chat
from app.execution.results import JobResult
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


async def _room_for(gpu: GpuState, model: str, agents: list[Agent]) -> None:
    """Unload the largest resident models until the judge's model fits beside the rest (it counts against G)."""
    resident = await gpu.refresh()
    if any(m.name == model for m in resident):
        return
    need = next((a.vram_gb for a in agents if a.name == model), 0.0)
    kept = sorted(resident, key=lambda m: m.size_vram)
    while kept and sum(m.size_vram for m in kept) / 1e9 + need > gpu.capacity_gb + 1e-9:
        await gpu.backend.unload(kept.pop().name)


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
    async with gpu.lock:
        await _room_for(gpu, model, agents)
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
