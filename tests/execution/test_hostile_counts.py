"""Counts no database column holds never wedge the service: the upstream's are refused at parse time, a charge is
bounded, and a job whose outcome row is refused still ends (failed, with the reason) instead of staying running."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from app.backends.upstream_limits import MAX_TOKEN_COUNT, check_counts
from app.core.errors import BadBackendResponse
from app.domain.status import JobStatus
from app.execution.lifecycle import JobLifecycle
from app.execution.telemetry import Recorder
from app.execution.usage import UsageSink
from app.execution.usage_journal import MAX_CHARGE, UsageJournal
from app.storage import db
from app.storage.models import Job
from app.storage.repo import Repo


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    db.upgrade(engine)
    return Repo(engine)


@pytest.mark.parametrize("value", [10**30, 1e300, MAX_TOKEN_COUNT + 1, -1, float("nan"), "12", True])
def test_token_counts_beyond_the_bound_are_a_bad_upstream(value: object) -> None:
    with pytest.raises(BadBackendResponse, match="non-count eval_count"):
        check_counts({"eval_count": value}, "http://upstream/api/chat")


def test_counts_within_the_bound_pass() -> None:
    check_counts({"eval_count": MAX_TOKEN_COUNT, "prompt_eval_count": 1.5, "total_duration": 2**62}, "u")


def test_a_huge_charge_is_bounded_not_retried_forever(repo: Repo, tmp_path: Path) -> None:
    tenant, _ = repo.create_tenant("t")
    sink = UsageSink(repo, journal=UsageJournal(tmp_path / "usage"))

    async def go() -> None:
        sink.add_id(tenant.id, 10**30)
        await sink.flush()
        await sink.record(tenant.id, 10**30)

    asyncio.run(go())
    assert not sink.pending
    stored = repo.get_tenant(tenant.id)
    assert stored is not None and stored.tokens_used == 2 * MAX_CHARGE


def test_a_refused_outcome_row_still_ends_the_job(repo: Repo) -> None:
    tenant, _ = repo.create_tenant("t")
    repo.create_job(Job(id="j1", tenant_id=tenant.id, status="running"))
    life = JobLifecycle(Recorder(repo, tenant.id), "j1", JobStatus.RUNNING)
    asyncio.run(life.finish(JobStatus.SUCCEEDED, total_tokens=10**30))  # no SQLite INTEGER holds it
    job = repo.get_job(None, "j1")
    assert job is not None and job.status == "failed" and job.finished_at is not None
    assert job.error is not None and "could not be recorded" in job.error and "OverflowError" in job.error
