"""Token usage per tenant: the one sink every caller charges (proxied calls in batches, jobs at once), and the
one reader that counts what is not written yet."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from app.execution.usage_journal import MAX_CHARGE, UsageJournal

if TYPE_CHECKING:
    from app.storage.models import Tenant
    from app.storage.repo import Repo

log = logging.getLogger("swarm.usage")
FLUSH_DELAY_S = 2.0  # proxied usage is written in batches, off the request path


def bounded(tokens: int) -> int:
    """A charge within what the database column holds (callers validate counts; this is the last guard)."""
    if tokens > MAX_CHARGE:
        log.error("a charge of %d tokens is beyond any real usage: charged %d", tokens, MAX_CHARGE)
        return MAX_CHARGE
    return tokens


class UsageSink:
    """Charges tokens to tenants. `add` batches (the proxy's hot path never waits on the database); `record` writes
    at once. Cached tenant objects (budget checks) see a charge immediately either way."""

    def __init__(self, repo: Repo, flush_delay_s: float = FLUSH_DELAY_S, journal: UsageJournal | None = None) -> None:
        self.repo = repo
        self.flush_delay_s = flush_delay_s
        self.journal = journal
        self.pending: dict[str, int] = {}
        self.writing: dict[str, int] = {}
        # Tokens admitted work is expected to use (jobs), counted by budget checks until the work settles.
        self.reserved: dict[str, int] = {}
        self.task: asyncio.Task[None] | None = None
        self.lock = threading.Lock()
        if journal is not None:
            journal.replay(repo.add_tokens_used)

    def add(self, tenant: Tenant, tokens: int) -> None:
        if tokens <= 0:
            return
        tokens = bounded(tokens)
        if tenant.token_budget is not None:
            # The cached tenant object is shared by requests with the same key: its budget check sees this now.
            tenant.tokens_used += tokens
        self.add_id(tenant.id, tokens)

    def add_id(self, tenant_id: str, tokens: int) -> None:
        """Charge in the next batch; journaled first, so a kill -9 before the batch is written loses nothing."""
        if tokens <= 0:
            return
        tokens = bounded(tokens)
        if self.journal is not None:
            self.journal.append(tenant_id, tokens)
        self.pending[tenant_id] = self.pending.get(tenant_id, 0) + tokens
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._flush_later())

    def reserve(self, tenant_id: str, tokens: int) -> None:
        self.reserved[tenant_id] = self.reserved.get(tenant_id, 0) + max(0, tokens)

    def release(self, tenant_id: str, tokens: int) -> None:
        left = self.reserved.get(tenant_id, 0) - max(0, tokens)
        if left > 0:
            self.reserved[tenant_id] = left
        else:
            self.reserved.pop(tenant_id, None)

    async def record(self, tenant_id: str, tokens: int) -> None:
        """Charge and write now (a finished job)."""
        if tokens > 0:
            tokens = bounded(tokens)
            with self.lock:
                self.writing[tenant_id] = self.writing.get(tenant_id, 0) + tokens
            await asyncio.to_thread(self._write, tenant_id, tokens)

    async def _flush_later(self) -> None:
        await asyncio.sleep(self.flush_delay_s)
        await self.flush()

    async def flush(self) -> None:
        with self.lock:  # brief: a reader holds it only around one DB read
            batch, self.pending = self.pending, {}
            for tenant_id, tokens in batch.items():
                self.writing[tenant_id] = self.writing.get(tenant_id, 0) + tokens
            sealed = self.journal.rotate() if self.journal is not None and batch else None
        failed: dict[str, int] = {}
        for tenant_id, tokens in batch.items():
            try:
                await asyncio.to_thread(self._write, tenant_id, tokens)
            except Exception:  # a failed write must never fail a request; the tokens wait for the next batch
                log.exception("could not record %d tokens for tenant %s", tokens, tenant_id)
                failed[tenant_id] = tokens
        for tenant_id, tokens in failed.items():
            self.add_id(tenant_id, tokens)
        if sealed is not None:
            sealed.unlink(missing_ok=True)

    async def aclose(self) -> None:
        await self.flush()
        if self.journal is not None:
            self.journal.close()

    def _write(self, tenant_id: str, tokens: int) -> None:
        with self.lock:  # the DB increment and leaving `writing` are one step for readers
            try:
                self.repo.add_tokens_used(tenant_id, tokens)
            finally:
                self.writing[tenant_id] -= tokens

    def fresh(self, load: Callable[[], Tenant | None]) -> Tenant | None:
        """A tenant read from the database with the tokens not written yet counted in its `tokens_used` (what its
        budget checks read); call it in a worker thread."""
        with self.lock:
            tenant = load()
            if tenant is not None:
                tenant.tokens_used += self.pending.get(tenant.id, 0) + self.writing.get(tenant.id, 0)
        return tenant

    def tokens_used(self, tenant_id: str) -> tuple[Tenant | None, int]:
        """(the tenant as stored, its tokens including those not written yet); call it in a worker thread."""
        with self.lock:
            tenant = self.repo.get_tenant(tenant_id)
            unwritten = self.pending.get(tenant_id, 0) + self.writing.get(tenant_id, 0)
        return tenant, (tenant.tokens_used if tenant is not None else 0) + unwritten
