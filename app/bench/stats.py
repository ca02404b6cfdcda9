"""Report statistics: mean with a 95% t-interval, summary numbers and the Pareto frontier."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from scipy import stats as _st


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def std(values: Sequence[float]) -> float | None:
    """Sample standard deviation (ddof=1); 0 for one value, None for none."""
    if not values:
        return None
    if len(values) == 1:
        return 0.0
    m = sum(values) / len(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (len(values) - 1))


def ci95(values: Sequence[float]) -> tuple[float | None, float | None]:
    """(mean, half-width) of the two-sided 95% Student-t interval; half-width None below two values."""
    m = mean(values)
    s = std(values)
    if m is None or s is None or len(values) < 2:
        return m, None
    t = float(_st.t.ppf(0.975, len(values) - 1))
    return m, t * s / math.sqrt(len(values))


def summary(values: Sequence[float], digits: int = 6) -> dict[str, Any]:
    m, half = ci95(values)
    sd = std(values)
    return {
        "n": len(values),
        "mean": _r(m, digits),
        "ci95": _r(half, digits),
        "ci95_low": _r(None if m is None or half is None else m - half, digits),
        "ci95_high": _r(None if m is None or half is None else m + half, digits),
        "std": _r(sd, digits),
        "min": _r(min(values) if values else None, digits),
        "max": _r(max(values) if values else None, digits),
    }


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _r(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """a dominates b when it is no worse on every axis and better on one (every axis: larger is better)."""
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(x > y for x, y in zip(a, b, strict=True))


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the non-dominated points (larger is better on every axis; negate costs before calling)."""
    return [i for i, p in enumerate(points) if not any(dominates(q, p) for j, q in enumerate(points) if j != i)]


def grouped_front(
    rows: Sequence[dict[str, Any]], group: str, maximize: Sequence[str], minimize: Sequence[str]
) -> list[int]:
    """Pareto frontier within each group (e.g. per benchmark, never across); indices into `rows`, sorted."""
    out: list[int] = []
    for key in dict.fromkeys(r[group] for r in rows):
        idx = [i for i, r in enumerate(rows) if r[group] == key]
        pts = [
            [float(rows[i][k] or 0.0) for k in maximize] + [-float(rows[i][k] or 0.0) for k in minimize] for i in idx
        ]
        out += [idx[k] for k in pareto_front(pts)]
    return sorted(out)
