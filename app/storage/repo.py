"""The only code that issues SQL: tenant, job, subtask, plan-step, bench-run and telemetry persistence."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import and_, func, or_, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from app.core.errors import ValidationFailed
from app.domain.status import UNFINISHED_JOB, JobStatus
from app.storage.models import BenchRun, EstimatorState, Job, PlanStepRecord, SubtaskRecord, TelemetryEvent, Tenant, now

UNFINISHED = tuple(s.value for s in UNFINISHED_JOB)
DEFAULT_TENANT = "default"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


class Repo:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    # ---- tenants -------------------------------------------------------------------------------------
    def create_tenant(self, name: str, **fields: Any) -> tuple[Tenant, str]:
        """Create a tenant and return it with its API key (the only time the key is visible)."""
        key = "sk-swarm-" + secrets.token_urlsafe(24)
        tenant = Tenant(id=new_id("t"), name=name, key_hash=hash_key(key), key_prefix=key[:12], **fields)
        try:
            with self.session() as s:
                s.add(tenant)
                s.commit()
        except IntegrityError:  # a concurrent request took the name first
            raise ValidationFailed(f"name: a tenant named {name!r} already exists") from None
        return tenant, key

    def ensure_default_tenant(self) -> Tenant:
        with self.session() as s:
            tenant = s.get(Tenant, DEFAULT_TENANT)
            if tenant is None:
                tenant = Tenant(id=DEFAULT_TENANT, name=DEFAULT_TENANT)
                s.add(tenant)
                s.commit()
            return tenant

    def keyed_tenant_count(self) -> int:
        with self.session() as s:
            return int(s.exec(select(func.count()).where(col(Tenant.key_hash).is_not(None))).one())

    def tenant_by_key(self, key: str) -> Tenant | None:
        with self.session() as s:
            return s.exec(select(Tenant).where(Tenant.key_hash == hash_key(key))).first()

    def tenant_by_name(self, name: str) -> Tenant | None:
        with self.session() as s:
            return s.exec(select(Tenant).where(Tenant.name == name)).first()

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        with self.session() as s:
            return s.get(Tenant, tenant_id)

    def list_tenants(self) -> list[Tenant]:
        with self.session() as s:
            return list(s.exec(select(Tenant).order_by(col(Tenant.created_at))))

    def tenant_holdings(self, tenant_id: str) -> dict[str, int]:
        """What deleting the tenant would delete with it: jobs (and how many are unfinished), bench runs, events."""
        with self.session() as s:

            def count(model: Any, *where: Any) -> int:
                return int(s.exec(select(func.count()).select_from(model).where(*where)).one())

            return {
                "jobs": count(Job, Job.tenant_id == tenant_id),
                "unfinished_jobs": count(Job, Job.tenant_id == tenant_id, col(Job.status).in_(UNFINISHED)),
                "bench_runs": count(BenchRun, BenchRun.tenant_id == tenant_id),
                "unfinished_bench_runs": count(
                    BenchRun, BenchRun.tenant_id == tenant_id, col(BenchRun.status).in_(UNFINISHED)
                ),
                "telemetry_events": count(TelemetryEvent, TelemetryEvent.tenant_id == tenant_id),
            }

    def delete_tenant(self, tenant_id: str) -> bool:
        """Delete a tenant and everything it owns (children first: foreign keys are on)."""
        with self.session() as s:
            tenant = s.get(Tenant, tenant_id)
            if tenant is None:
                return False
            job_ids = list(s.exec(select(Job.id).where(Job.tenant_id == tenant_id)))
            for model in (SubtaskRecord, PlanStepRecord):
                for row in s.exec(select(model).where(col(model.job_id).in_(job_ids))):
                    s.delete(row)
            for row2 in s.exec(select(TelemetryEvent).where(TelemetryEvent.tenant_id == tenant_id)):
                s.delete(row2)
            for model2 in (Job, BenchRun):
                for row3 in s.exec(select(model2).where(model2.tenant_id == tenant_id)):
                    s.delete(row3)
            s.flush()
            s.delete(tenant)
            s.commit()
            return True

    def add_tokens_used(self, tenant_id: str, tokens: int) -> None:
        with self.session() as s:
            s.execute(update(Tenant).where(col(Tenant.id) == tenant_id).values(tokens_used=Tenant.tokens_used + tokens))
            s.commit()

    # ---- jobs ------------------------------------------------------------------------------------------
    def create_job(self, job: Job) -> Job:
        with self.session() as s:
            s.add(job)
            s.commit()
        return job

    def update_job(self, job_id: str, **fields: Any) -> None:
        with self.session() as s:
            s.execute(update(Job).where(col(Job.id) == job_id).values(**fields))
            s.commit()

    def get_job(self, tenant_id: str | None, job_id: str) -> Job | None:
        """Tenant-scoped: a foreign id is indistinguishable from a missing one (tenant None: any tenant, admin)."""
        with self.session() as s:
            job = s.get(Job, job_id)
            return job if job is not None and tenant_id in (None, job.tenant_id) else None

    def list_jobs(self, tenant_id: str | None, status: str | None, offset: int, limit: int) -> tuple[list[Job], int]:
        with self.session() as s:
            query = select(Job)
            count = select(func.count()).select_from(Job)
            if tenant_id is not None:
                query = query.where(Job.tenant_id == tenant_id)
                count = count.where(Job.tenant_id == tenant_id)
            if status:
                query = query.where(Job.status == status)
                count = count.where(Job.status == status)
            rows = s.exec(query.order_by(col(Job.created_at).desc()).offset(offset).limit(limit))
            return list(rows), int(s.exec(count).one())

    def unfinished_owners(self) -> list[str]:
        """The owners of unfinished jobs and bench runs."""
        with self.session() as s:
            owners: set[str] = set()
            for table in (Job, BenchRun):
                rows = s.exec(select(table.owner_id).where(col(table.status).in_(UNFINISHED)).distinct())
                owners.update(o for o in rows if o)
            return sorted(owners)

    def mark_unfinished_interrupted(
        self,
        reason: str,
        *,
        owner_id: str | None = None,
        stale_after_s: float | None = None,
        dead_owners: Sequence[str] = (),
    ) -> int:
        """Jobs left queued/running by a process that is gone are marked, never silently lost. With `owner_id`,
        only those of another owner whose heartbeat is older than `stale_after_s` (or that have no owner): a
        second process on the same database leaves the first one's live jobs alone."""
        with self.session() as s:
            counts = []
            for table in (Job, BenchRun):
                gone: Any = col(table.status).in_(UNFINISHED)
                if owner_id is not None:
                    cutoff = now() - (stale_after_s or 0.0)
                    stale = or_(col(table.heartbeat_at).is_(None), col(table.heartbeat_at) < cutoff)
                    other = and_(col(table.owner_id) != owner_id, stale)
                    dead = col(table.owner_id).in_(list(dead_owners))
                    gone = and_(gone, or_(col(table.owner_id).is_(None), other, dead))
                result = s.execute(
                    update(table)
                    .where(gone)
                    .values(status=JobStatus.INTERRUPTED.value, error=reason, finished_at=now())
                )
                counts.append(int(result.rowcount or 0))  # type: ignore[attr-defined]
            s.commit()
            return counts[0]

    def heartbeat(self, owner_id: str) -> None:
        """This process is alive: stamp its unfinished jobs and bench runs."""
        with self.session() as s:
            for table in (Job, BenchRun):
                s.execute(
                    update(table)
                    .where(col(table.owner_id) == owner_id, col(table.status).in_(UNFINISHED))
                    .values(heartbeat_at=now())
                )
            s.commit()

    # ---- subtasks and plan steps ---------------------------------------------------------------------
    def add_subtasks(self, rows: Sequence[SubtaskRecord]) -> None:
        with self.session() as s:
            s.add_all(rows)
            s.commit()

    def update_subtask(self, job_id: str, subtask_id: str, **fields: Any) -> None:
        with self.session() as s:
            s.execute(
                update(SubtaskRecord)
                .where(col(SubtaskRecord.job_id) == job_id, col(SubtaskRecord.subtask_id) == subtask_id)
                .values(**fields)
            )
            s.commit()

    def subtasks(self, job_id: str) -> list[SubtaskRecord]:
        with self.session() as s:
            q = select(SubtaskRecord).where(SubtaskRecord.job_id == job_id).order_by(col(SubtaskRecord.id))
            return list(s.exec(q))

    def add_plan_step(self, row: PlanStepRecord) -> None:
        with self.session() as s:
            s.add(row)
            s.commit()

    def plan_steps(self, job_id: str) -> list[PlanStepRecord]:
        with self.session() as s:
            q = select(PlanStepRecord).where(PlanStepRecord.job_id == job_id)
            return list(s.exec(q.order_by(col(PlanStepRecord.step_index))))

    # ---- bench runs ------------------------------------------------------------------------------------
    def create_bench_run(self, run: BenchRun) -> BenchRun:
        with self.session() as s:
            s.add(run)
            s.commit()
        return run

    def update_bench_run(self, run_id: str, **fields: Any) -> None:
        with self.session() as s:
            s.execute(update(BenchRun).where(col(BenchRun.id) == run_id).values(**fields))
            s.commit()

    def get_bench_run(self, tenant_id: str | None, run_id: str) -> BenchRun | None:
        with self.session() as s:
            run = s.get(BenchRun, run_id)
            return run if run is not None and tenant_id in (None, run.tenant_id) else None

    def list_bench_runs(self, tenant_id: str | None, limit: int) -> list[BenchRun]:
        """Newest first; tenant None lists every tenant's runs (admin)."""
        with self.session() as s:
            q = select(BenchRun)
            if tenant_id is not None:
                q = q.where(BenchRun.tenant_id == tenant_id)
            return list(s.exec(q.order_by(col(BenchRun.created_at).desc()).limit(limit)))

    # ---- estimator state --------------------------------------------------------------------------------
    def estimator_state(self, catalog: str) -> dict[str, Any] | None:
        with self.session() as s:
            row = s.get(EstimatorState, catalog)
            return dict(row.state) if row is not None else None

    def save_estimator_state(self, catalog: str, models: list[str], state: dict[str, Any]) -> None:
        with self.session() as s:
            row = s.get(EstimatorState, catalog)
            if row is None:
                s.add(EstimatorState(catalog=catalog, models=models, state=state))
            else:
                row.models, row.state, row.updated_at = models, state, now()
                s.add(row)
            s.commit()

    # ---- telemetry -------------------------------------------------------------------------------------
    def add_events(self, events: Sequence[TelemetryEvent]) -> None:
        with self.session() as s:
            s.add_all(events)
            s.commit()

    def recent_events(self, tenant_id: str | None, event_type: str, limit: int) -> list[TelemetryEvent]:
        """The newest `limit` events of one type, oldest first; tenant None: every tenant's (admin)."""
        with self.session() as s:
            q = select(TelemetryEvent).where(TelemetryEvent.event_type == event_type)
            if tenant_id is not None:
                q = q.where(TelemetryEvent.tenant_id == tenant_id)
            rows = list(s.exec(q.order_by(col(TelemetryEvent.id).desc()).limit(limit)))
        return rows[::-1]

    def iter_events(
        self,
        tenant_id: str | None,
        job_id: str | None = None,
        event_type: str | None = None,
        since: float | None = None,
        batch: int = 500,
        after_id: int = 0,
    ) -> Iterator[TelemetryEvent]:
        """Events in insertion order, fetched in keyset-paginated batches so exports stream."""
        last_id = after_id
        while True:
            with self.session() as s:
                q = select(TelemetryEvent).where(col(TelemetryEvent.id) > last_id)
                if tenant_id is not None:
                    q = q.where(TelemetryEvent.tenant_id == tenant_id)
                if job_id:
                    q = q.where(TelemetryEvent.job_id == job_id)
                if event_type:
                    q = q.where(TelemetryEvent.event_type == event_type)
                if since is not None:
                    q = q.where(col(TelemetryEvent.ts) >= since)
                rows = list(s.exec(q.order_by(col(TelemetryEvent.id)).limit(batch)))
            if not rows:
                return
            yield from rows
            last_id = int(rows[-1].id or 0)
