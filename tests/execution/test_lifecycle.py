"""Job and subtask statuses change only along the allowed transitions, through one owner."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from app.domain.status import (
    JOB_TRANSITIONS,
    IllegalTransition,
    JobStatus,
    SubtaskStatus,
    job_transition,
    subtask_transition,
)
from app.execution.lifecycle import JobLifecycle
from app.execution.results import SubtaskResult

pytestmark = pytest.mark.anyio
APP = Path(__file__).resolve().parents[2] / "app"


class FakeRecorder:
    def __init__(self) -> None:
        self.updates: list[dict[str, Any]] = []

    async def update_job(self, job_id: str, **fields: Any) -> None:
        self.updates.append({"job_id": job_id, **fields})

    async def drain(self) -> None:
        return None


def test_job_transitions() -> None:
    assert job_transition("queued", "running") is JobStatus.RUNNING
    assert job_transition(JobStatus.RUNNING, JobStatus.SUCCEEDED) is JobStatus.SUCCEEDED
    for src, dst in [("running", "queued"), ("succeeded", "failed"), ("cancelled", "running"), ("queued", "succeeded")]:
        with pytest.raises(IllegalTransition, match=f"from {src} to {dst}"):
            job_transition(src, dst)
    assert all(not JOB_TRANSITIONS[s] for s in JobStatus if s not in (JobStatus.QUEUED, JobStatus.RUNNING))
    with pytest.raises(ValueError):
        job_transition("queued", "paused")


def test_subtask_moves() -> None:
    res = SubtaskResult("a", "code")
    assert res.status == "pending"  # a StrEnum: compares equal to the stored string
    res.move(SubtaskStatus.RUNNING)
    res.move(SubtaskStatus.DONE)
    with pytest.raises(IllegalTransition):
        res.move(SubtaskStatus.FAILED)
    assert subtask_transition("pending", "skipped") is SubtaskStatus.SKIPPED
    with pytest.raises(IllegalTransition):
        subtask_transition("skipped", "running")


async def test_lifecycle_records_each_change_once() -> None:
    rec = FakeRecorder()
    life = JobLifecycle(rec, "j1")  # type: ignore[arg-type]
    await life.start()
    await life.finish(JobStatus.FAILED, error="boom")
    assert [u["status"] for u in rec.updates] == ["running", "failed"]
    assert rec.updates[1]["error"] == "boom" and "finished_at" in rec.updates[1]
    with pytest.raises(IllegalTransition):
        await life.finish(JobStatus.SUCCEEDED)
    assert len(rec.updates) == 2  # a refused change is not recorded


def _status_writes(path: Path) -> list[int]:
    """Lines that pass status= to update_job (the job row's status)."""
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        call = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "update_job"
        if call and any(k.arg == "status" for k in node.keywords):  # type: ignore[attr-defined]
            lines.append(node.lineno)
    return lines


def test_only_the_lifecycle_writes_a_job_status() -> None:
    writers = {p.relative_to(APP).as_posix() for p in APP.rglob("*.py") if _status_writes(p)}
    assert writers == {"execution/lifecycle.py"}
