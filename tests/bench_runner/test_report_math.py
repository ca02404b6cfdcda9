"""Report statistics on hand-made inputs: t-interval, Pareto frontier (grouped), mode comparison."""

from __future__ import annotations

import math
from typing import Any

from app.bench.report import compare_modes
from app.bench.stats import ci95, grouped_front, pareto_front, summary


def test_ci95_matches_student_t() -> None:
    m, half = ci95([1.0, 2.0, 3.0, 4.0, 5.0])
    # t(0.975, 4) = 2.776445; s = sqrt(2.5)
    assert m == 3.0 and half is not None
    assert math.isclose(half, 2.776445 * math.sqrt(2.5) / math.sqrt(5), rel_tol=1e-5)
    assert ci95([0.7]) == (0.7, None)
    assert ci95([]) == (None, None)
    s = summary([0.0, 1.0, 1.0, 0.0])
    assert s["mean"] == 0.5 and s["min"] == 0.0 and s["max"] == 1.0
    assert math.isclose(s["ci95_high"] - s["ci95_low"], 2 * s["ci95"], abs_tol=1e-5)


def test_pareto_front_hand_made() -> None:
    # (score, -cost): A dominates C; B is a trade-off; D ties A exactly (neither dominates)
    points = [[0.9, -10.0], [0.5, -2.0], [0.8, -12.0], [0.9, -10.0], [0.4, -3.0]]
    assert pareto_front(points) == [0, 1, 3]
    rows: list[dict[str, Any]] = [
        {"benchmark": "x", "score": 0.9, "cost": 10.0},
        {"benchmark": "x", "score": 0.8, "cost": 12.0},
        {"benchmark": "y", "score": 0.1, "cost": 50.0},  # bad, but alone in its group: on its own frontier
        {"benchmark": "x", "score": 0.5, "cost": 2.0},
    ]
    assert grouped_front(rows, "benchmark", ["score"], ["cost"]) == [0, 2, 3]


def _row(mode: str, job: str, sub: str, model: str, score: float) -> dict[str, Any]:
    return {"mode": mode, "job": job, "subtask": sub, "model": model, "score": score, "benchmark": "b"}


def test_compare_modes_counts() -> None:
    rows = [
        _row("lp", "j1", "a", "m1", 1.0), _row("llm", "j1", "a", "m2", 0.0),  # lp wins, differed, lp better
        _row("lp", "j2", "a", "m1", 0.0), _row("llm", "j2", "a", "m1", 1.0),  # lp loses, same model
        _row("lp", "j3", "a", "m1", 1.0), _row("llm", "j3", "a", "m3", 1.0),  # tie, differed, tied
        _row("lp", "j3", "b", "m1", 0.5), _row("llm", "j3", "b", "m1", 0.5),
    ]  # fmt: skip
    c = compare_modes(rows, "lp", "llm")
    assert (c["jobs_won"], c["jobs_lost"], c["jobs_tied"]) == (1, 1, 1)
    assert c["subtasks_compared"] == 4 and c["routing_divergence"] == 0.5
    assert c["when_differed"] == {"n": 2, "lp_better": 1, "llm_better": 0, "tied": 1}
