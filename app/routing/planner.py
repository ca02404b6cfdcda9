"""Planner-LLM router: prompt with the same information as the MILP, parse and validate, repair once, fall back."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app.core.errors import BudgetExceeded
from app.domain.models import Plan, PlannerInfo, RoutingProblem
from app.routing.baselines import greedy_assign
from app.routing.estimator import Estimates
from app.routing.plan_builder import build_plan
from app.routing.registry import PLANNER

_EPS = 1e-9


@dataclass(frozen=True)
class ChatReply:
    content: str
    prompt_tokens: int = 0
    eval_tokens: int = 0
    model: str | None = None


# (messages, options) -> reply. options carries "model", "format" (a JSON schema, Ollama style), "temperature".
ChatFn = Callable[[list[dict[str, str]], dict[str, Any]], Awaitable[ChatReply]]


def plan_schema(est: Estimates) -> dict[str, Any]:
    """The answer's JSON schema, {"assignments": [{"subtask_id", "model"}]}, narrowed to this problem: ids and model
    names as enums, one item per subtask.

    Ollama turns `format` into a grammar, so the planner cannot even spell an unknown id, or a model that cannot
    fit in G on its own.
    """
    fitting = [name for name, v in zip(est.agents, est.vram, strict=True) if v <= est.gpu_vram_gb + 1e-9]
    item = {
        "type": "object",
        "properties": {
            "subtask_id": {"type": "string", "enum": list(est.subtask_ids)},
            "model": {"type": "string", "enum": fitting or list(est.agents)},
        },
        "required": ["subtask_id", "model"],
    }
    n = len(est.subtask_ids)
    array = {"type": "array", "items": item, "minItems": n, "maxItems": n}
    return {"type": "object", "properties": {"assignments": array}, "required": ["assignments"]}


_SYSTEM = (
    "You are a routing planner for a GPU that can hold only a few models at once. "
    "Reply with JSON only, matching the given schema."
)
_FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)


def build_messages(problem: RoutingProblem, est: Estimates) -> list[dict[str, str]]:
    prm = problem.params
    body = {
        "goal": "Assign every subtask to exactly one model, maximizing total utility.",
        "objective": "sum over subtasks of (quality - lambda_token*token_cost) "
        "- lambda_switch * sum of switch_cost for every model loaded that is not already resident",
        "constraints": [
            "Every subtask_id appears exactly once; use only the listed model names.",
            "Models used in the same step are resident together: their vram_gb must sum to <= gpu_vram_gb.",
            "A subtask's context_tokens must be <= the model's max_ctx.",
        ],
        "gpu_vram_gb": problem.gpu_vram_gb,
        "lambda_token": prm.lambda_token,
        "lambda_switch": prm.lambda_switch,
        "token_scale": prm.token_scale,
        "switch_t_scale_ms": prm.switch_t_scale_ms,
        "loaded_models": [a for a in est.agents if a in set(problem.loaded)],
        "subtasks": [
            {
                "id": s.id,
                "task_type": s.task_type,
                "difficulty": s.difficulty,
                "estimated_tokens": s.estimated_tokens,
                "context_tokens": s.context_tokens,
                "deps": s.deps,
                "step": problem.step(s.id),
                "description": s.description[:500],
            }
            for s in problem.subtasks
        ],
        "agents": [
            {
                "name": a.name,
                "capabilities": a.capabilities,
                "vram_gb": a.vram_gb,
                "cost_per_token": a.cost_per_token,
                "load_time_ms": a.load_time_ms,
                "switch_cost": round(float(est.switch_cost_raw[i]), 4),
                "loaded": bool(est.loaded[i]),
                "max_ctx": a.max_ctx,
            }
            for i, a in enumerate(problem.agents)
        ],
        # The estimator's current (learned, difficulty-adjusted) view, so the planner is not stuck on priors.
        "estimates": [{k: r[k] for k in ("model", "subtask_id", "quality", "token_cost")} for r in est.to_rows()],
        "output_schema": plan_schema(est),
    }
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": json.dumps(body)}]


def extract_json(text: str) -> Any:
    """First JSON object found in fenced blocks, then anywhere in the text (prose before or after is ignored)."""
    decoder = json.JSONDecoder()
    blocks = [*_FENCE.findall(text), text]
    for block in blocks:
        for match in re.finditer(r"\{", block):
            try:
                value, _ = decoder.raw_decode(block, match.start())
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    raise ValueError("no JSON object found in the planner reply")


def validate(payload: Any, est: Estimates) -> tuple[list[int] | None, list[str]]:
    """Return (assignment, []) if the answer is a valid plan, else (None, violations) with exact messages."""
    items = payload.get("assignments") if isinstance(payload, dict) else None
    if not isinstance(items, list):
        return None, ['the reply must be an object with an "assignments" list']
    problems: list[str] = []
    chosen: dict[str, int] = {}
    for item in items:
        sid = item.get("subtask_id") if isinstance(item, dict) else None
        name = (item.get("model") or item.get("agent")) if isinstance(item, dict) else None
        if sid not in est.subtask_ids:
            problems.append(f"unknown subtask_id {sid!r}")
        elif sid in chosen:
            problems.append(f"subtask {sid!r} is assigned more than once")
        elif name not in est.agents:
            problems.append(f"subtask {sid!r}: unknown model {name!r} (allowed: {', '.join(est.agents)})")
        else:
            chosen[sid] = est.agents.index(name)
    problems += [f"subtask {sid!r} is missing" for sid in est.subtask_ids if sid not in chosen]
    if problems:
        return None, problems
    assignment = [chosen[sid] for sid in est.subtask_ids]
    for m, i in enumerate(assignment):
        if not est.ctx_ok[i, m]:
            problems.append(f"subtask {est.subtask_ids[m]!r} does not fit the context of {est.agents[i]}")
    for t in range(est.n_steps):
        used = sorted({i for m, i in enumerate(assignment) if est.steps[m] == t})
        total = float(sum(est.vram[i] for i in used))
        if total > est.gpu_vram_gb + _EPS:
            parts = " + ".join(f"{est.agents[i]} ({est.vram[i]:g} GB)" for i in used)
            problems.append(f"step {t} uses {parts} = {total:g} GB > gpu_vram_gb = {est.gpu_vram_gb:g} GB")
    return (None, problems) if problems else (assignment, [])


class _Attempts:
    """Accumulates the planner's cost across the first call and the repair call."""

    def __init__(self, planner_model: str | None, schema: dict[str, Any]) -> None:
        self.info = PlannerInfo(model=planner_model)
        self.schema = schema

    async def ask(self, chat: ChatFn, messages: list[dict[str, str]], timeout_s: float) -> ChatReply:
        options = {"model": self.info.model, "format": self.schema, "temperature": 0.0}
        self.info.attempts += 1
        start = time.perf_counter()
        try:
            reply = await asyncio.wait_for(chat(messages, options), timeout=timeout_s)
        finally:
            self.info.latency_ms += (time.perf_counter() - start) * 1000.0
        self.info.prompt_tokens += reply.prompt_tokens
        self.info.eval_tokens += reply.eval_tokens
        self.info.model = reply.model or self.info.model
        return reply


def _check(content: str, est: Estimates) -> tuple[list[int] | None, str]:
    try:
        payload = extract_json(content)
    except ValueError as exc:
        return None, str(exc)
    assignment, problems = validate(payload, est)
    return assignment, "; ".join(problems)


async def plan_with_llm(
    problem: RoutingProblem,
    est: Estimates,
    chat: ChatFn,
    *,
    planner_model: str | None = None,
    timeout_s: float = 120.0,
) -> Plan:
    """Ask, validate, re-prompt once with the exact violations, and fall back to greedy; never raises on LLM
    failure (only InfeasibleError from the greedy fallback when no plan exists at all)."""
    calls = _Attempts(planner_model, plan_schema(est))
    messages = build_messages(problem, est)
    reason: str
    try:
        first = await calls.ask(chat, messages, timeout_s)
        assignment, why = _check(first.content, est)
        if assignment is not None:
            return _plan(problem, est, assignment, PLANNER, None, calls.info)
        repair = [
            *messages,
            {"role": "assistant", "content": first.content},
            {
                "role": "user",
                "content": f"Your plan is invalid: {why}. Return the corrected JSON object only, "
                "covering every subtask exactly once.",
            },
        ]
        second = await calls.ask(chat, repair, timeout_s)
        assignment, why2 = _check(second.content, est)
        if assignment is not None:
            return _plan(problem, est, assignment, "llm_repaired", None, calls.info)
        reason = f"invalid after repair: first answer: {why}; repaired answer: {why2}"
    except TimeoutError:
        reason = f"planner call timed out after {timeout_s:g} s"
    except BudgetExceeded:  # the job's tenant spent its budget on this call: the job stops, no fallback plan
        raise
    except Exception as exc:  # the chat fn is foreign code; any failure must degrade to a plan, not a crash
        reason = f"planner call failed: {type(exc).__name__}: {exc}"
    return _plan(problem, est, greedy_assign(est), "fallback_greedy", reason, calls.info)


def _plan(
    problem: RoutingProblem,
    est: Estimates,
    assignment: list[int],
    source: str,
    reason: str | None,
    info: PlannerInfo,
) -> Plan:
    return build_plan(
        problem, est, assignment, mode=PLANNER, routing_source=source, fallback_reason=reason, planner=info
    )
