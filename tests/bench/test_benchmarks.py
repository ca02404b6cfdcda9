"""Generated benchmarks: size, distinctness, seeding, valid DAGs and independently recomputed answers."""

from __future__ import annotations

import re

import pytest

from app.bench.registry import get_benchmark
from app.bench.scoring import score_code
from app.bench.types import BenchSubtask, Example

GENERATED = ["workflowbench", "code_math_mix", "agentic_bench"]


def _texts(examples: list[Example]) -> list[str]:
    return ["\n".join(s.description for s in ex.subtasks) for ex in examples]


def _ints(text: str) -> list[int]:
    return [int(x) for x in re.findall(r"-?\d+", text)]


@pytest.mark.parametrize("name", GENERATED)
def test_limit_30_gives_30_distinct_seeded_examples(name: str) -> None:
    bench = get_benchmark(name)
    first = bench.load(30, 7)
    assert len(first) == 30
    assert len(set(_texts(first))) == 30
    assert len({ex.id for ex in first}) == 30
    assert [ex.model_dump() for ex in bench.load(30, 7)] == [ex.model_dump() for ex in first]
    assert _texts(bench.load(30, 8)) != _texts(first)


@pytest.mark.parametrize("name", GENERATED)
def test_dags_are_valid_and_every_subtask_is_scorable(name: str) -> None:
    for ex in get_benchmark(name).load(30, 3):
        seen: set[str] = set()
        for sub in ex.subtasks:
            assert all(dep in seen for dep in sub.deps), (ex.id, sub.id)
            seen.add(sub.id)
            assert sub.description and (sub.expected is not None or sub.code_spec is not None)
            plain = sub.to_subtask()
            assert not hasattr(plain, "expected") and plain.deps == sub.deps


def test_workflowbench_covers_chains_forks_and_diamonds() -> None:
    examples = get_benchmark("workflowbench").load(30, 1)
    templates = {ex.metadata["template"] for ex in examples}
    assert templates == {"order_chain", "sequence_fork", "shipment_check", "payroll", "stock_diamond"}
    fork = next(ex for ex in examples if ex.metadata["template"] == "sequence_fork")
    assert [s.deps for s in fork.subtasks] == [[], ["implement"], ["implement"]]


def _by(ex: Example, sid: str) -> BenchSubtask:
    return next(s for s in ex.subtasks if s.id == sid)


def _check_order(ex: Example) -> None:
    q, p, d = _ints(_by(ex, "compute").description)[:3]
    assert _by(ex, "compute").expected == pytest.approx(q * p - q * p * d / 100)
    assert _by(ex, "extract").expected["quantity"] == q


def _check_sequence(ex: Example) -> None:
    text = _by(ex, "value").description
    pat = r"a\(0\) = (\d+), a\(1\) = (\d+) and a\(n\) = a\(n-1\) \+ (\d+)\*a\(n-2\).*What is a\((\d+)\)\?"
    a0, a1, k, m = (int(x) for x in re.search(pat, text).groups())  # type: ignore[union-attr]
    values = [a0, a1]
    while len(values) <= m:
        values.append(values[-1] + k * values[-2])
    assert _by(ex, "value").expected == values[m]
    spec = _by(ex, "implement").code_spec
    assert spec is not None and all(want == values[args[0]] for args, want in spec.tests if args[0] <= m)


def _check_payroll(ex: Example) -> None:
    h1, h2, h3, rate, bar = _ints(_by(ex, "bonus").description)
    assert _by(ex, "total").expected == (h1 + h2 + h3) * rate
    assert _by(ex, "bonus").expected == ("yes" if (h1 + h2 + h3) * rate > bar else "no")


def _check_shipment(ex: Example) -> None:
    w, lim, bridge = _ints(_by(ex, "decide").description)
    assert _by(ex, "decide").expected == ("yes" if w <= min(lim, bridge) else "no")


def _check_stock(ex: Example) -> None:
    text = _by(ex, "mass").description
    counts = dict((g, int(n)) for n, g in re.findall(r"(\d+) (\w+)(?:,|;)", text.split(";")[0] + ";"))
    kilos = dict((g, int(n)) for g, n in re.findall(r"one of the (\w+) weighs (\d+) kg", text))
    assert counts.keys() == kilos.keys()
    assert _by(ex, "mass").expected == sum(counts[g] * kilos[g] for g in counts)
    assert _by(ex, "extract").expected == counts


CHECKS = {
    "order_chain": _check_order,
    "sequence_fork": _check_sequence,
    "payroll": _check_payroll,
    "shipment_check": _check_shipment,
    "stock_diamond": _check_stock,
}


@pytest.mark.parametrize("seed", [0, 11])
def test_workflow_expected_values_recomputed_from_the_prompt_text(seed: int) -> None:
    for ex in get_benchmark("workflowbench").load(15, seed):
        CHECKS[ex.metadata["template"]](ex)


def test_code_math_mix_balances_task_types_and_hand_checks() -> None:
    examples = get_benchmark("code_math_mix").load(30, 5)
    kinds = [ex.kind for ex in examples]
    assert {k: kinds.count(k) for k in set(kinds)} == dict.fromkeys(
        ["code", "math", "reasoning", "extraction", "summarize"], 6
    )
    for ex in examples:
        sub = ex.subtasks[0]
        if ex.metadata["generator"] == "math_tank":
            volume, fill, drain = _ints(sub.description)[:3]
            assert sub.expected * (fill - drain) == volume
        if ex.metadata["generator"] == "reason_order":
            names = re.findall(r"(\w+) is older than", sub.description.split("?")[0])
            chain = [*names, *re.findall(r"older than (\w+)\.", sub.description)[-1:]]
            a, b = re.findall(r"Is (\w+) older than (\w+)\?", sub.description)[0]
            assert sub.expected == ("yes" if chain.index(a) < chain.index(b) else "no")


def test_agentic_chain_reference_solution_passes_its_own_tests() -> None:
    ex = get_benchmark("agentic_bench").load(6, 2)[0]
    assert [s.id for s in ex.subtasks] == ["plan", "code", "verify", "check", "report"]
    code = _by(ex, "code")
    assert code.code_spec is not None
    for args, want in code.code_spec.tests:
        assert isinstance(args[0], int) and isinstance(want, int)
    assert str(_by(ex, "verify").expected) in _by(ex, "report").expected


def test_workflow_code_subtask_scores_right_and_wrong_solutions() -> None:
    ex = next(e for e in get_benchmark("workflowbench").load(10, 4) if e.metadata["template"] == "order_chain")
    spec = _by(ex, "implement").code_spec
    assert spec is not None
    fn = spec.entry_point
    good = (
        f"def {fn}(quantity, unit_price, discount_pct):\n    return round(quantity*unit_price*(1-discount_pct/100), 2)"
    )
    bad = f"def {fn}(quantity, unit_price, discount_pct):\n    return quantity*unit_price"
    assert score_code(f"```python\n{good}\n```", spec, code_eval=True).score == 1.0
    assert (score_code(bad, spec, code_eval=True).score or 0) < 1.0
