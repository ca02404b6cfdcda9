"""Benchmark registry and the merged, mix-ordered arrival of examples from several benchmarks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from app.bench.agentic_bench import AgenticBench
from app.bench.code_math_mix import CodeMathMix
from app.bench.humaneval import HumanEval
from app.bench.mbpp import MBPP
from app.bench.mmlu import MMLU
from app.bench.mt_bench import MTBench
from app.bench.types import TASK_ORDER, Benchmark, Example
from app.bench.workflowbench import WorkflowBench

Mix = Literal["grouped", "interleave"]

_FACTORIES: dict[str, Callable[[], Benchmark]] = {
    "workflowbench": WorkflowBench,
    "code_math_mix": CodeMathMix,
    "agentic_bench": AgenticBench,
    "humaneval": HumanEval,
    "mbpp": MBPP,
    "mmlu": MMLU,
    "mt_bench": MTBench,
}


def list_benchmarks() -> list[str]:
    return list(_FACTORIES)


def get_benchmark(name: str) -> Benchmark:
    try:
        return _FACTORIES[name]()
    except KeyError:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(_FACTORIES)}") from None


def _kind_ranks(examples: list[Example]) -> dict[str, int]:
    """Task types in their canonical order, then workflow templates by first appearance."""
    ranks = dict(TASK_ORDER)
    for ex in examples:
        ranks.setdefault(ex.kind, len(ranks))
    return ranks


def grouped(examples: list[Example], bench_order: list[str]) -> list[Example]:
    """All jobs of one task type (or template) together, by benchmark inside it; stable otherwise."""
    ranks = _kind_ranks(examples)
    pos = {ex.id: i for i, ex in enumerate(examples)}
    return sorted(examples, key=lambda e: (ranks[e.kind], bench_order.index(e.benchmark), pos[e.id]))


def interleave(examples: list[Example], bench_order: list[str]) -> list[Example]:
    """Round-robin over (kind, benchmark) queues so neighbours differ in type, then benchmark, when possible.

    Taking the type with most jobs left first keeps a dominant type from piling up at the end.
    """
    ranks = _kind_ranks(examples)
    queues: dict[tuple[int, int], list[Example]] = {}
    for ex in examples:
        queues.setdefault((ranks[ex.kind], bench_order.index(ex.benchmark)), []).append(ex)
    left = {kind: sum(len(q) for k, q in queues.items() if k[0] == kind) for kind, _ in queues}
    out: list[Example] = []
    last: tuple[int, int] | None = None
    while any(queues.values()):
        live = [k for k, q in queues.items() if q]

        def pref(key: tuple[int, int], last: tuple[int, int] | None = last) -> tuple[int, ...]:
            same_kind = int(last is not None and key[0] == last[0])
            same_bench = int(last is not None and key[1] == last[1])
            return (same_kind, -left[key[0]], same_bench, -len(queues[key]), key[0], key[1])

        last = min(live, key=pref)
        left[last[0]] -= 1
        out.append(queues[last].pop(0))
    return out


def load_examples(names: list[str], limit: int, seed: int, mix: Mix = "grouped", **opts: Any) -> list[Example]:
    """`limit` examples from each named benchmark, merged and ordered by `mix`."""
    if mix not in ("grouped", "interleave"):
        raise ValueError(f"unknown mix {mix!r}; use 'grouped' or 'interleave'")
    order = list(dict.fromkeys(names))
    if not order:
        raise ValueError(f"no benchmark given; known: {', '.join(_FACTORIES)}")
    merged: list[Example] = []
    for name in order:
        merged.extend(get_benchmark(name).load(limit, seed, **opts))
    return grouped(merged, order) if mix == "grouped" else interleave(merged, order)
