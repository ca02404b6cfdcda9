"""Token usage per tenant: the one sink every caller charges (proxied calls in batches, jobs at once), and the
one reader that counts what is not written yet."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.storage.models import Tenant
    from app.storage.repo import Repo

log = logging.getLogger("swarm.usage")
FLUSH_DELAY_S = 2.0  # proxied usage is written in batches, off the request path


class UsageSink:
    """Charges tokens to tenants. `add` batches (the proxy's hot path never waits on the database); `record` writes
    at once. Cached tenant objects (budget checks) see a charge immediately either way."""

    def __init__(self, repo: Repo, flush_delay_s: float = FLUSH_DELAY_S) -> None:
        self.repo = repo
        self.flush_delay_s = flush_delay_s
        self.pending: dict[str, int] = {}
        self.writing: dict[str, int] = {}
        self.task: asyncio.Task[None] | None = None
        self.lock = threading.Lock()

    def add(self, tenant: Tenant, tokens: int) -> None:
        if tokens <= 0:
            return
        if tenant.token_budget is not None:
            # The cached tenant object is shared by requests with the same key: its budget check sees this now.
            tenant.tokens_used += tokens
        self.pending[tenant.id] = self.pending.get(tenant.id, 0) + tokens
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._flush_later())

    async def record(self, tenant_id: str, tokens: int) -> None:
        """Charge and write now (a finished job)."""
        if tokens > 0:
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
        for tenant_id, tokens in batch.items():
            try:
                await asyncio.to_thread(self._write, tenant_id, tokens)
            except Exception:  # a failed write must never fail a request; the tokens are logged instead
                log.exception("could not record %d tokens for tenant %s", tokens, tenant_id)

    def _write(self, tenant_id: str, tokens: int) -> None:
        with self.lock:  # the DB increment and leaving `writing` are one step for readers
            try:
                self.repo.add_tokens_used(tenant_id, tokens)
            finally:
                self.writing[tenant_id] -= tokens

    def tokens_used(self, tenant_id: str) -> tuple[Tenant | None, int]:
        """(the tenant as stored, its tokens including those not written yet); call it in a worker thread."""
        with self.lock:
            tenant = self.repo.get_tenant(tenant_id)
            unwritten = self.pending.get(tenant_id, 0) + self.writing.get(tenant_id, 0)
        return tenant, (tenant.tokens_used if tenant is not None else 0) + unwritten
