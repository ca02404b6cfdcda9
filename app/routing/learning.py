"""What the estimator learns online: quality per (model, task type) from scored results with counts and an
interval, and load time / prefill / decode speed per model from every measured call."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

Z95 = 1.96
LOAD_EMA = 0.3  # load times drift (disk cache, other tenants): recent loads weigh more


@dataclass
class QualityStats:
    """Scores mapped to capability scale: count, mean, sum of squared deviations (Welford)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0

    def add(self, value: float) -> None:
        self.n += 1
        delta = value - self.mean
        self.mean += delta / self.n
        self.m2 += delta * (value - self.mean)

    def posterior(self, prior: float, prior_weight: float) -> float:
        """The prior counts as `prior_weight` observations: one lucky score cannot flip a routing decision."""
        return (prior_weight * prior + self.n * self.mean) / (prior_weight + self.n)

    def half_width(self, prior: float, prior_weight: float) -> float:
        """95% half-width of the estimate, from the Beta posterior it approximates (scores in [0, 1])."""
        q = self.posterior(prior, prior_weight)
        return Z95 * math.sqrt(q * (1.0 - q) / (prior_weight + self.n + 1.0))


@dataclass
class SpeedStats:
    """Per model: load time (EMA of measured cold loads) and prefill / decode tokens per second (pooled)."""

    loads: int = 0
    load_ms: float = 0.0
    calls: int = 0
    prompt_tokens: float = 0.0
    prompt_s: float = 0.0
    eval_tokens: float = 0.0
    eval_s: float = 0.0

    def add_load(self, load_ms: float) -> None:
        self.load_ms = load_ms if self.loads == 0 else (1 - LOAD_EMA) * self.load_ms + LOAD_EMA * load_ms
        self.loads += 1

    def add_call(self, prompt_tokens: int, prompt_ms: float, eval_tokens: int, eval_ms: float) -> None:
        if eval_ms > 0 and eval_tokens > 0:
            self.calls += 1
            self.eval_tokens += eval_tokens
            self.eval_s += eval_ms / 1e3
        if prompt_ms > 0 and prompt_tokens > 0:
            self.prompt_tokens += prompt_tokens
            self.prompt_s += prompt_ms / 1e3

    @property
    def decode_tps(self) -> float | None:
        return self.eval_tokens / self.eval_s if self.eval_s > 0 else None

    @property
    def prefill_tps(self) -> float | None:
        return self.prompt_tokens / self.prompt_s if self.prompt_s > 0 else None

    def view(self) -> dict[str, Any]:
        out = asdict(self)
        out["decode_tps"] = None if self.decode_tps is None else round(self.decode_tps, 3)
        out["prefill_tps"] = None if self.prefill_tps is None else round(self.prefill_tps, 3)
        return out

    @classmethod
    def from_view(cls, data: dict[str, Any]) -> SpeedStats:
        names = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in names}
        if any(not isinstance(v, int | float) or isinstance(v, bool) or v < 0 for v in values.values()):
            raise ValueError(f"bad speed row {data!r}")
        return cls(**values)


@dataclass
class Learned:
    quality: dict[tuple[str, str], QualityStats] = field(default_factory=dict)
    speed: dict[str, SpeedStats] = field(default_factory=dict)
