"""Text scorers and code extraction."""

from __future__ import annotations

import pytest

from app.bench.scoring import (
    extract_code,
    extract_number,
    extract_yes_no,
    score_code,
    score_exact,
    score_json,
    score_keywords,
    score_numeric,
    score_subtask,
)
from app.bench.types import BenchSubtask, CodeSpec


def test_json_fenced_bare_and_in_prose() -> None:
    want = {"name": "Lena", "age": 42, "city": "Perth"}
    fenced = 'Sure!\n```json\n{"name": "lena", "age": 42.0, "city": "Perth "}\n```\nHope that helps.'
    assert score_json(fenced, want).score == 1.0
    assert score_json('Result: {"Name": "Lena", "age": "42", "city": "perth", "x": 1} done', want).score == 1.0
    half = score_json('{"name": "Lena", "age": 41}', want)
    assert half.score == pytest.approx(1 / 3) and "age" in half.detail
    assert score_json("no json here", want).score == 0.0
    assert score_json("[1, 2]", want).score == 0.0
    assert score_json("```\n[1, 2.0]\n```", [1, 2]).score == 1.0


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42", 42.0),
        ("The answer is 42.", 42.0),
        ("First 3 apples, then 7 pears, so 10 total", 10.0),
        ("Answer: 1,250 dollars, which is 10 more than 1,240", 1250.0),
        ("Final answer: $-3.5", -3.5),
        ("\\boxed{17} (checked against 16)", 17.0),
        ("nothing numeric", None),
    ],
)
def test_extract_number(text: str, value: float | None) -> None:
    assert extract_number(text) == value


def test_numeric_match_is_tolerant_of_format() -> None:
    assert score_numeric("42.0", 42).score == 1.0
    assert score_numeric("It costs $287.9999999", 288.0).score == 1.0
    assert score_numeric("41", 42).score == 0.0


def test_keywords_fraction_case_insensitive_whole_tokens() -> None:
    assert score_keywords("The PORTO depot scrapped 368 units.", ["porto", "368"]).score == 1.0
    partial = score_keywords("Porto lost 3680 units", ["Porto", "368", "Lena", "lamps"])
    assert partial.score == 0.25 and "368" in partial.detail


@pytest.mark.parametrize(
    ("text", "verdict"),
    [
        ("Yes, because ...", "yes"),
        ("No.", "no"),
        ("Answer yes or no: No, she is younger.", "no"),
        ("Let me think. Bob is not older, so the answer is: yes", "yes"),
        ("**Answer:** No", "no"),
        ("Nobody knows; yesterday it was unclear", None),
        ("", None),
    ],
)
def test_yes_no_edge_cases(text: str, verdict: str | None) -> None:
    assert extract_yes_no(text) == verdict


def test_exact_ignores_case_quotes_and_trailing_period() -> None:
    assert score_exact(" `Porto`. ", "porto").score == 1.0
    assert score_exact("Porto city", "porto").score == 0.0


def test_code_extraction_from_fences_and_prose() -> None:
    reply = "Here:\n```python\ndef helper():\n    pass\n```\nand\n```py\ndef f(x):\n    return x\n```"
    assert extract_code(reply, "f").startswith("def f(x)")
    prose = "Sure, here it is:\ndef f(x):\n    return x + 1\nThis adds one."
    assert extract_code(prose, "f") == "def f(x):\n    return x + 1"
    assert extract_code("```python\ndef f(x):\n    return 2", "f") == "def f(x):\n    return 2"


def test_code_uses_its_own_entry_point_and_arguments() -> None:
    # One argument: the seed's fixed call entry(3, 4) would raise TypeError and fail this correct answer.
    fib = CodeSpec(entry_point="fib", tests=[([0], 0), ([1], 1), ([10], 55), ([20], 6765)])
    good = "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a"
    assert score_code(good, fib, code_eval=True).score == 1.0
    # Right only for (3, 4): a scorer that always calls (3, 4) would pass it.
    add = CodeSpec(entry_point="add", tests=[([1, 2], 3), ([10, -4], 6), ([3, 4], 7)])
    cheat = score_code("def add(a, b):\n    return 7", add, code_eval=True)
    assert cheat.score == pytest.approx(1 / 3) and cheat.method == "code_exec"
    tuples = CodeSpec(entry_point="pair", tests=[([2], [2, 4.0])])
    assert score_code("def pair(x):\n    return (x, 2 * x)", tuples, code_eval=True).score == 1.0


def test_code_without_code_eval_is_a_labelled_heuristic() -> None:
    spec = CodeSpec(entry_point="f", tests=[([1], 1)])
    assert score_code("def f(x):\n    return x", spec, code_eval=False).model_dump() == {
        "score": 0.5,
        "method": "heuristic",
        "detail": "code_eval off; not executed",
    }
    assert score_code("def g(x): return x", spec, code_eval=False).score == 0.0


def test_dispatch_missing_output_and_judge_only() -> None:
    num = BenchSubtask(id="a", task_type="math", scorer="numeric", expected=3)
    assert score_subtask(num, None, code_eval=False).score == 0.0
    assert score_subtask(num, "so 3", code_eval=False).score == 1.0
    free = BenchSubtask(id="b", task_type="creative", scorer="judge_only")
    assert score_subtask(free, "a poem", code_eval=False).score is None
    with pytest.raises(ValueError, match="code_spec"):
        BenchSubtask(id="c", task_type="code", scorer="code")
