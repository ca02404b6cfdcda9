"""--mtbench_judge: every pair of modes' MT-Bench answers judged turn by turn, positions swapped; win rates."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from app.backends.base import Backend
from app.backends.sim import SimBackend
from app.bench.config import BenchConfig
from app.bench.judging import judge_model_for
from app.bench.pairwise import judge_swapped
from app.bench.types import JobRecord
from app.domain.models import Agent
from app.domain.status import SubtaskStatus
from app.execution.budget import HelperMeter
from app.execution.llm import bind_chat
from app.routing.registry import EXACT, PLANNER

BENCH = "mt_bench"


def mode_pairs(modes: list[str]) -> list[tuple[str, str]]:
    """Every pair, the original's lp-vs-llm pair first when both ran."""
    pairs = [(a, b) for i, a in enumerate(modes) for b in modes[i + 1 :]]
    key = (EXACT, PLANNER)
    return sorted(pairs, key=lambda p: p != key)


def _counts(items: list[dict[str, Any]]) -> dict[str, int]:
    return {k: sum(i["outcome"] == v for i in items) for k, v in (("a", "first"), ("b", "second"), ("tie", "tie"))}


def _tally(items: list[dict[str, Any]], a: str, b: str, model: str) -> dict[str, Any]:
    judged = [i for i in items if i["outcome"] is not None]
    wins = {"a": sum(i["outcome"] == "first" for i in judged), "b": sum(i["outcome"] == "second" for i in judged)}
    wins["tie"] = len(judged) - wins["a"] - wins["b"]
    n = len(judged)
    turns = sorted({i["turn"] for i in judged})
    return {
        "mode_a": a,
        "mode_b": b,
        "judge_model": model,
        "n_judged": n,
        "n_failed": len(items) - n,
        "wins": wins,
        "win_rate_a": round(wins["a"] / n, 6) if n else None,
        "win_rate_b": round(wins["b"] / n, 6) if n else None,
        "tie_rate": round(wins["tie"] / n, 6) if n else None,
        "by_turn": {t: _counts([i for i in judged if i["turn"] == t]) for t in turns},
    }


async def mtbench_pairwise(
    rows: list[dict[str, Any]],
    jobs: list[JobRecord],
    backend: Backend,
    agents: list[Agent],
    config: BenchConfig,
    charge: Callable[[int, bool], Awaitable[None]] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(report fields, per-judgement records). Each turn is judged with the conversation's question for that turn;
    a pair of answers counts as a win only when both orders agree (else a tie)."""
    if isinstance(backend, SimBackend):  # a key-less twin: the sim would answer the quoted task otherwise
        backend = SimBackend(agents, backend.memory.capacity_gb, seed=backend.seed, name="sim-judge")
    model = config.mtbench_judge_model or judge_model_for(config, agents)
    chat = bind_chat(HelperMeter(backend, charge), model, config.keep_alive)  # charge: each call's tokens
    answers = {
        (r["mode"], r["job"], r["subtask"]): r["output"] or ""
        for r in rows
        if r["benchmark"] == BENCH and r["status"] == SubtaskStatus.DONE
    }
    subtasks = {(j.example.id, s.id): s for j in jobs if j.example.benchmark == BENCH for s in j.example.subtasks}
    results, records = [], []
    for a, b in mode_pairs(config.modes):
        items = []
        for (job, sid), sub in sorted(subtasks.items()):
            if (a, job, sid) not in answers or (b, job, sid) not in answers:
                continue
            ref = sub.expected if isinstance(sub.expected, str) else None
            v = await judge_swapped(
                chat, sub.description, answers[(a, job, sid)], answers[(b, job, sid)], reference=ref
            )
            item = {"mode_a": a, "mode_b": b, "job": job, "turn": sid, "outcome": v.outcome,
                    "forward": v.forward.__dict__, "backward": v.backward.__dict__}  # fmt: skip
            items.append(item)
        records += items
        results.append(_tally(items, a, b, model))
    fields: dict[str, Any] = {"mtbench_pairwise_all": results}
    if results:
        fields["mtbench_pairwise"] = results[0]
    return fields, records


def write_judgements(out: Path, records: list[dict[str, Any]]) -> None:
    with (out / "mtbench_judgements.jsonl").open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec, sort_keys=True) + "\n")
