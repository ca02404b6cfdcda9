"""Registry lookups and the grouped / interleave arrival orders."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from app.bench.registry import get_benchmark, list_benchmarks, load_examples
from app.bench.types import Benchmark

DATA = Path(__file__).parent / "data"


def test_every_benchmark_is_registered_and_loads() -> None:
    assert list_benchmarks() == [
        "workflowbench",
        "code_math_mix",
        "agentic_bench",
        "humaneval",
        "mbpp",
        "mmlu",
        "mt_bench",
    ]
    for name in list_benchmarks():
        bench = get_benchmark(name)
        assert isinstance(bench, Benchmark) and bench.name == name
        examples = bench.load(3, 0, data_dir=DATA)
        assert len(examples) == 3 and all(ex.benchmark == name for ex in examples)


def test_unknown_benchmark_lists_known_names() -> None:
    with pytest.raises(ValueError, match=r"workflowbench.*mbpp"):
        get_benchmark("gsm8k")
    with pytest.raises(ValueError, match="mix"):
        load_examples(["code_math_mix"], 3, 0, mix="shuffled")  # type: ignore[arg-type]


def _changes(keys: list[str]) -> int:
    return sum(a != b for a, b in itertools.pairwise(keys))


def test_grouped_vs_interleave_on_one_benchmark() -> None:
    grouped = load_examples(["code_math_mix"], 20, 3, mix="grouped")
    mixed = load_examples(["code_math_mix"], 20, 3, mix="interleave")
    assert sorted(e.id for e in grouped) == sorted(e.id for e in mixed)
    kinds_g, kinds_i = [e.kind for e in grouped], [e.kind for e in mixed]
    # Grouped: each type arrives in one run; interleave: no two neighbours share a type.
    assert _changes(kinds_g) == len(set(kinds_g)) - 1
    assert kinds_g[0] == "code"
    assert _changes(kinds_i) == len(kinds_i) - 1
    assert [e.id for e in grouped] != [e.id for e in mixed]


def test_interleave_alternates_benchmarks_and_keeps_going_when_one_type_dominates() -> None:
    mixed = load_examples(["workflowbench", "code_math_mix"], 10, 1, mix="interleave")
    benches = [e.benchmark for e in mixed]
    assert _changes(benches) == len(benches) - 1
    lopsided = load_examples(["humaneval", "code_math_mix"], 10, 1, mix="interleave")
    kinds = [e.kind for e in lopsided]
    assert len(lopsided) == 20 and kinds.count("code") == 12
    # 12 code jobs but only 8 others: 12 - (8 + 1) = 3 code-after-code pairs are forced, and no more.
    assert sum(a == b == "code" for a, b in itertools.pairwise(kinds)) == 3
    assert kinds[0] == "code" and kinds[-1] == "code"


def test_grouped_puts_benchmarks_together_within_a_type() -> None:
    grouped = load_examples(["humaneval", "code_math_mix"], 5, 2, mix="grouped")
    code = [e.benchmark for e in grouped if e.kind == "code"]
    assert code == sorted(code, key=["humaneval", "code_math_mix"].index)
    assert load_examples(["humaneval", "code_math_mix"], 5, 2, mix="grouped") == grouped
