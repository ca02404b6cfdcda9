"""Job, subtask and benchmark-run statuses and the transitions allowed between them."""

from __future__ import annotations

from enum import StrEnum


class IllegalTransition(ValueError):
    """A state change the lifecycle does not allow (a bug in the caller, never user input)."""


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # The process that ran it stopped before it finished (set by the start-up sweep).
    INTERRUPTED = "interrupted"


class SubtaskStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # an upstream subtask failed


UNFINISHED_JOB: frozenset[JobStatus] = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
FINISHED_SUBTASK: frozenset[SubtaskStatus] = frozenset(
    {SubtaskStatus.DONE, SubtaskStatus.FAILED, SubtaskStatus.SKIPPED}
)

_ENDS = frozenset({JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.INTERRUPTED})
JOB_TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset({JobStatus.RUNNING}) | _ENDS,
    JobStatus.RUNNING: frozenset({JobStatus.SUCCEEDED}) | _ENDS,
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
    JobStatus.INTERRUPTED: frozenset(),
}
SUBTASK_TRANSITIONS: dict[SubtaskStatus, frozenset[SubtaskStatus]] = {
    SubtaskStatus.PENDING: frozenset({SubtaskStatus.RUNNING, SubtaskStatus.SKIPPED}),
    SubtaskStatus.RUNNING: frozenset({SubtaskStatus.DONE, SubtaskStatus.FAILED}),
    SubtaskStatus.DONE: frozenset(),
    SubtaskStatus.FAILED: frozenset(),
    SubtaskStatus.SKIPPED: frozenset(),
}


def job_transition(current: JobStatus | str, new: JobStatus | str) -> JobStatus:
    """`new` as a JobStatus when the lifecycle allows current -> new; else IllegalTransition."""
    src, dst = JobStatus(current), JobStatus(new)
    if dst not in JOB_TRANSITIONS[src]:
        raise IllegalTransition(f"job status cannot go from {src} to {dst}")
    return dst


def subtask_transition(current: SubtaskStatus | str, new: SubtaskStatus | str) -> SubtaskStatus:
    src, dst = SubtaskStatus(current), SubtaskStatus(new)
    if dst not in SUBTASK_TRANSITIONS[src]:
        raise IllegalTransition(f"subtask status cannot go from {src} to {dst}")
    return dst
