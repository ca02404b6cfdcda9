"""Token budgets while work runs: a job's calls are charged as they finish (durably, through the usage sink), the
job stops between calls once its tenant's budget is spent, admitted work (a job, a proxied call) holds an estimate
until it settles, and a call cut by a cancel is charged its estimate."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from app.core.errors import BudgetExceeded
from app.domain.models import Subtask
from app.execution.runtime import Runtime
from app.execution.usage import bounded
from app.storage.models import Tenant

QUERY_ESTIMATE = 1024  # tokens reserved for a query job before its decomposition is known


def job_estimate(subtasks: list[Subtask] | None) -> int:
    if not subtasks:
        return QUERY_ESTIMATE
    return sum(s.estimated_tokens + len(s.description) // 4 for s in subtasks)


def call_estimate(body_bytes: int, max_tokens: Any, default: int) -> int:
    """Tokens a proxied call reserves at admission: its prompt (the request body at four bytes a token, above the
    prompt's real count for text) plus its output limit (the max tokens field; `default` when it sets none or an
    unlimited value: -1/-2, and 0, which Ollama's runner reads as no limit either)."""
    limited = isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens > 0
    return max(0, body_bytes) // 4 + (max_tokens if limited else default)


def cut_estimate(request: dict[str, Any], expected: int | None = None) -> tuple[int, int]:
    """(prompt, output) tokens of a chat call cut before answering: its messages at four characters a token, and
    the output expected of it (a subtask's estimate: what admission reserves for it), within its num_predict; a call
    without an expected size counts its num_predict."""
    prompt = sum(len(str(m.get("content") or "")) for m in request.get("messages") or []) // 4
    options = request.get("options")
    limit = options.get("num_predict") if isinstance(options, dict) else None
    cap = limit if isinstance(limit, int) and limit > 0 else None
    return prompt, min([x for x in (expected, cap) if x is not None], default=0)


class HelperMeter:
    """The backend as a job's helper calls (decomposer, planner, synthesiser) see it: each call's tokens are counted
    for the job's charge and reported to `on_call` as the call finishes (the orchestrator turns that into a
    `helper_call` event its JobMeter charges, which raises BudgetExceeded once the tenant's budget is spent); a call
    cut by a cancel counts its estimate."""

    def __init__(self, backend: Any, on_call: Callable[[int, bool], Awaitable[None]] | None = None) -> None:
        self.backend = backend
        self.on_call = on_call
        self.tokens = 0

    async def chat(self, request: dict[str, Any], *, final: bool = False) -> dict[str, Any]:
        """`final`: the job's last call (its synthesis): charged, but there is nothing left to stop."""
        try:
            body: dict[str, Any] = await self.backend.chat(request)
        except asyncio.CancelledError:
            self.tokens += sum(cut_estimate(request))
            raise
        tokens = int(body.get("prompt_eval_count") or 0) + int(body.get("eval_count") or 0)
        self.tokens += tokens
        if self.on_call is not None:
            await self.on_call(tokens, final)
        return body


def ledger_key(job_id: str, subtask_id: str | None = None) -> str:
    """A JobMeter charge key: one subtask's call of a job, or (no subtask) the job's helper calls."""
    return f"{job_id}/subtask/{subtask_id}" if subtask_id is not None else f"{job_id}/helpers"


def check_budget(runtime: Runtime, tenant: Tenant, reserve: int = 0) -> None:
    """429 when the tenant's spent plus reserved tokens reach its budget; otherwise reserve `reserve` tokens (the
    check and the reservation run without an await between them, so concurrent admissions see each other)."""
    reserved = runtime.usage.reserved.get(tenant.id, 0)
    if tenant.token_budget is not None and tenant.tokens_used + reserved >= tenant.token_budget:
        held = f" (+{reserved} reserved by running work)" if reserved else ""
        raise BudgetExceeded(
            f"token budget exhausted for tenant {tenant.name!r}: used {tenant.tokens_used}{held} "
            f"of {tenant.token_budget}"
        )
    if reserve and tenant.token_budget is not None:
        runtime.usage.reserve(tenant.id, reserve)


def charge_tenant(runtime: Runtime, tenant: Tenant, tokens: int) -> None:
    """The one way work charges a tenant as it runs (jobs, proxied calls, benchmarks): every cached copy of the
    tenant (the key cache may have replaced the object the work was admitted with) and the object itself see the
    tokens at once; the usage sink journals them and writes them in its next batch."""
    if tokens <= 0:
        return
    tokens = bounded(tokens)  # what the sink charges too
    before = tenant.tokens_used
    runtime.tenants.add_tokens(tenant.id, tokens)
    if tenant.tokens_used == before:  # the admitted object is not (or no longer) in the cache
        tenant.tokens_used += tokens
    runtime.usage.add_id(tenant.id, tokens)


class JobMeter:
    """A job's (or a benchmark run's) listener: charges each finished model call as its event arrives and raises
    BudgetExceeded (the job fails with that reason) when the tenant's budget is spent, before the next call starts.

    Charges are keyed (a job's subtask, its helper calls): `settle` charges what a ledger says beyond what the keys
    were charged already, so a call is charged once however it is reported (its event, a cancel's estimate). The
    admission reservation shrinks by each charge and `close` gives back the rest."""

    def __init__(self, runtime: Runtime, tenant: Tenant, reserved: int = 0) -> None:
        self.runtime = runtime
        self.tenant = tenant
        self.reserved = reserved
        self.charged = 0
        self.by_key: dict[str, int] = {}

    def charge_key(self, key: str, tokens: int) -> None:
        """Charge `key` up to `tokens` in all (never less than already charged)."""
        extra = tokens - self.by_key.get(key, 0)
        if extra > 0:
            self.by_key[key] = tokens
            self.charge(extra)

    def charge(self, tokens: int) -> None:
        if tokens <= 0:
            return
        self.charged += tokens
        held = min(tokens, self.reserved)
        if held:  # the reservation turns into the charge (no await in between: admissions see one or the other)
            self.reserved -= held
            self.runtime.usage.release(self.tenant.id, held)
        charge_tenant(self.runtime, self.tenant, tokens)

    def settle(self, ledger: dict[str, int]) -> None:
        for key, tokens in ledger.items():
            self.charge_key(key, tokens)

    def close(self) -> None:
        """The work is over: what is left of the reservation goes back."""
        if self.reserved:
            self.runtime.usage.release(self.tenant.id, self.reserved)
            self.reserved = 0

    def spent(self) -> bool:
        budget = self.tenant.token_budget
        return budget is not None and self.tenant.tokens_used >= budget

    def check(self) -> None:
        if self.spent():
            raise BudgetExceeded(
                f"token budget exhausted for tenant {self.tenant.name!r} while the job ran: stopped after "
                f"{self.charged} tokens (used {self.tenant.tokens_used} of {self.tenant.token_budget})"
            )

    def __call__(self, record: dict[str, Any]) -> None:
        event, job = record.get("event"), record.get("job_id")
        if event == "subtask":
            tokens = int(record.get("prompt_tokens") or 0) + int(record.get("eval_tokens") or 0)
            self.charge_key(ledger_key(str(job), str(record.get("subtask_id"))), tokens)
        elif event == "helper_call":
            self.charge_key(ledger_key(str(job)), int(record.get("helper_tokens") or 0))
            if record.get("final"):
                return
        else:
            return
        self.check()
