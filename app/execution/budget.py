"""Token budgets while work runs: a job's calls are charged as they finish (durably, through the usage sink), the
job stops between calls once its tenant's budget is spent, admitted work (a job, a proxied call) holds an estimate
until it settles, and a call cut by a cancel is charged its estimate."""

from __future__ import annotations

import asyncio
from typing import Any

from app.core.errors import BudgetExceeded
from app.domain.models import Subtask
from app.execution.runtime import Runtime
from app.storage.models import Tenant

QUERY_ESTIMATE = 1024  # tokens reserved for a query job before its decomposition is known


def job_estimate(subtasks: list[Subtask] | None) -> int:
    if not subtasks:
        return QUERY_ESTIMATE
    return sum(s.estimated_tokens + len(s.description) // 4 for s in subtasks)


def call_estimate(body_bytes: int, max_tokens: Any, default: int) -> int:
    """Tokens a proxied call reserves at admission: its prompt (the request body at four bytes a token, above the
    prompt's real count for text) plus its output limit (the max tokens field; `default` when it sets none or an
    unlimited -1/-2)."""
    limited = isinstance(max_tokens, int) and not isinstance(max_tokens, bool) and max_tokens >= 0
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
    for the job's charge; a call cut by a cancel counts its estimate."""

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self.tokens = 0

    async def chat(self, request: dict[str, Any]) -> dict[str, Any]:
        try:
            body: dict[str, Any] = await self.backend.chat(request)
        except asyncio.CancelledError:
            self.tokens += sum(cut_estimate(request))
            raise
        self.tokens += int(body.get("prompt_eval_count") or 0) + int(body.get("eval_count") or 0)
        return body


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


class JobMeter:
    """A job's listener: charges each finished model call and raises BudgetExceeded (the job fails with that
    reason) when the tenant's budget is spent, before the next call starts."""

    def __init__(self, runtime: Runtime, tenant: Tenant) -> None:
        self.runtime = runtime
        self.tenant = tenant
        self.charged = 0

    def charge(self, tokens: int) -> None:
        if tokens <= 0:
            return
        self.charged += tokens
        before = self.tenant.tokens_used
        self.runtime.tenants.add_tokens(self.tenant.id, tokens)  # every cached copy of the tenant
        if self.tenant.tokens_used == before:
            self.tenant.tokens_used += tokens
        self.runtime.usage.add_id(self.tenant.id, tokens)

    def __call__(self, record: dict[str, Any]) -> None:
        if record.get("event") != "subtask":
            return
        self.charge(int(record.get("prompt_tokens") or 0) + int(record.get("eval_tokens") or 0))
        budget = self.tenant.token_budget
        if budget is not None and self.tenant.tokens_used >= budget:
            raise BudgetExceeded(
                f"token budget exhausted for tenant {self.tenant.name!r} while the job ran: stopped after "
                f"{self.charged} tokens (used {self.tenant.tokens_used} of {budget})"
            )
