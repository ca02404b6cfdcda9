"""HumanEval: canonical solutions pass their own check(); wrong ones fail; the heuristic is labelled."""

from __future__ import annotations

import pytest

from app.bench.registry import get_benchmark
from app.bench.types import Example


@pytest.fixture(scope="module")
def problems() -> list[Example]:
    return get_benchmark("humaneval").load(0, 0)


def test_loads_all_164_problems_with_seeded_subsets(problems: list[Example]) -> None:
    bench = get_benchmark("humaneval")
    assert len(problems) == 164 and problems[0].id == "humaneval-0"
    assert len({p.id for p in problems}) == 164
    assert bench.load(10, 1) == bench.load(10, 1) != bench.load(10, 2)
    assert [e.id for e in bench.load(3, 9, sample=False)] == ["humaneval-0", "humaneval-1", "humaneval-2"]


@pytest.mark.parametrize("index", [0, 1, 2, 3, 4, 38, 92])
def test_canonical_passes_and_wrong_fails(problems: list[Example], index: int) -> None:
    ex = problems[index]
    bench = get_benchmark("humaneval")
    body = ex.metadata["canonical_solution"]
    assert bench.score(ex, {"solve": body}, code_eval=True)["solve"].score == 1.0
    wrong = bench.score(ex, {"solve": "    return None\n"}, code_eval=True)["solve"]
    assert wrong.score == 0.0 and wrong.method == "code_exec"


def test_full_function_reply_in_a_fence(problems: list[Example]) -> None:
    ex = problems[0]
    reply = (
        "Here you go:\n```python\nfrom typing import List\n\n"
        "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
        "    s = sorted(numbers)\n"
        "    return any(b - a < threshold for a, b in zip(s, s[1:]))\n```"
    )
    bench = get_benchmark("humaneval")
    assert bench.score(ex, {"solve": reply}, code_eval=True)["solve"].score == 1.0
    heur = bench.score(ex, {"solve": reply}, code_eval=False)["solve"]
    assert heur.method == "heuristic" and heur.score == 0.5
    assert bench.score(ex, {"solve": "I don't know."}, code_eval=False)["solve"].score == 0.0
