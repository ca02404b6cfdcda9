"""Per-subtask output rows of a benchmark run and the optional LLM-judge pass over them (never fatal)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from app.backends.base import Backend
from app.backends.sim import SimBackend
from app.bench.config import BenchConfig
from app.bench.judge import judge
from app.bench.types import JobRecord
from app.domain.models import Agent
from app.execution.budget import HelperMeter
from app.execution.llm import bind_chat
from app.routing import Estimator


def output_rows(jobs: list[JobRecord]) -> list[dict[str, Any]]:
    """One row per (mode, job, subtask). A failed or skipped subtask scores 0: a failure is not a missing value."""
    rows: list[dict[str, Any]] = []
    for job in jobs:
        for sub in job.example.subtasks:
            res = job.result.subtasks.get(sub.id)
            sr = job.scores.get(sub.id)
            status = res.status if res else "missing"
            error = res.error if res else None
            if status in ("pending", "missing") and job.result.error:
                # The job stopped before this subtask ran (e.g. routing failed): say why, never a silent 0.
                status, error = "not_run", job.result.error
            score = sr.score if sr is not None else (None if sub.scorer == "judge_only" else 0.0)
            rows.append(
                {
                    "mode": job.mode,
                    "block": job.block,
                    "benchmark": job.example.benchmark,
                    "job": job.example.id,
                    "subtask": sub.id,
                    "task_type": sub.task_type,
                    "model": res.model if res else None,
                    "step": res.step if res else None,
                    "status": status,
                    "error": error,
                    "output": res.output if res else None,
                    "expected": sub.expected,
                    "score": score,
                    "score_method": sr.method if sr is not None else "not_run",
                    "score_detail": sr.detail if sr is not None else (res.error if res else ""),
                    "eval_tokens": res.eval_tokens if res else 0,
                    "judge_score": None,
                    "judge_rationale": None,
                    "judge_error": None,
                }
            )
    return rows


def judge_model_for(config: BenchConfig, agents: list[Agent]) -> str:
    return config.judge_model or min(agents, key=lambda a: a.vram_gb).name


async def judge_rows(
    rows: list[dict[str, Any]],
    jobs: list[JobRecord],
    backend: Backend,
    agents: list[Agent],
    config: BenchConfig,
    estimators: dict[str, Estimator] | None = None,
    charge: Callable[[int, bool], Awaitable[None]] | None = None,
) -> None:
    """Judge every finished subtask after all modes ran (so judging never perturbs a mode's GPU state).

    Judge scores sit beside the benchmark scores, with the judge's rationale; each one is a scored result for the
    mode's own estimator (`estimators`, by mode; a frozen one ignores it). Failures land in judge_error.
    `charge`: told each judge call's tokens as it finishes (the tenant's budget).
    """
    if isinstance(backend, SimBackend):
        # The judge prompt quotes the task, so the sim's answer keys would answer it with the task's own answer;
        # a key-less sim twin answers the judge's JSON schema instead.
        backend = SimBackend(agents, backend.memory.capacity_gb, seed=backend.seed, name="sim-judge")
    chat = bind_chat(HelperMeter(backend, charge), judge_model_for(config, agents), config.keep_alive)
    descriptions = {(j.example.id, s.id): s.description for j in jobs for s in j.example.subtasks}
    difficulty = {(j.example.id, s.id): s.difficulty for j in jobs for s in j.example.subtasks}
    for row in rows:
        if row["status"] != "done":
            row["judge_error"] = f"not judged: subtask {row['status']}"
            continue
        verdict = await judge(chat, descriptions[(row["job"], row["subtask"])], row["output"] or "", row["expected"])
        row["judge_score"] = verdict.score
        row["judge_rationale"] = verdict.rationale or None
        row["judge_error"] = verdict.error
        learner = (estimators or {}).get(row["mode"])
        if learner is not None and verdict.score is not None and row["model"]:
            learner.observe_score(
                row["model"], row["task_type"], verdict.score, difficulty=difficulty[(row["job"], row["subtask"])]
            )
