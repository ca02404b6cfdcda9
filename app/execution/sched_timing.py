"""How long calls take on each model, as the scheduler plans its drains and deadlines: learned moving averages (calls
on a loaded model, and calls that load it) with their spread, and the catalog's priors for a model not seen yet."""

from __future__ import annotations

from collections.abc import Callable

from app.execution.sched_plan import ModelSpec

DEVIATIONS = 1.0  # a call in flight is expected to run its model's mean time plus this many mean deviations
SMOOTHING = 0.2  # weight of the newest call in the moving averages


def _ewma(seen: dict[str, float], model: str, value: float) -> None:
    seen[model] = value if model not in seen else (1 - SMOOTHING) * seen[model] + SMOOTHING * value


class CallTimes:
    def __init__(self, spec: Callable[[str], ModelSpec], load_scale: float) -> None:
        self.spec = spec
        # Seconds of real load time per second of catalog load time (a time-scaled simulator loads faster).
        self.load_scale = load_scale
        self.warm: dict[str, float] = {}  # model -> how long its calls take once it is loaded
        self.spread: dict[str, float] = {}  # model -> mean absolute deviation of those
        self.cold: dict[str, float] = {}  # model -> how long a call that loads it takes
        self.est_tokens: dict[str, int] = {}  # model -> tokens its calls are expected to generate (the caller's guess)
        self.last_start: dict[str, float] = {}  # model -> when its latest call was dispatched

    def expect(self, model: str, est_tokens: int) -> None:
        self.est_tokens.setdefault(model, est_tokens)

    def started(self, model: str, now: float, est_tokens: int) -> None:
        self.last_start[model] = now
        self.est_tokens[model] = est_tokens

    def finished(self, model: str, took: float, cold: bool) -> None:
        if cold:
            _ewma(self.cold, model, took)
            return
        if model in self.warm:
            _ewma(self.spread, model, abs(took - self.warm[model]))
        _ewma(self.warm, model, took)

    def load_s(self, model: str) -> float:
        return self.spec(model).load_ms / 1e3 * self.load_scale

    def call_s(self, model: str) -> float:
        """A call on the loaded model: its moving average, else what its calls that loaded it took beyond the load;
        for a model not seen yet, the longer of the catalog's guess (the expected tokens at its decode speed) and
        the other models' average scaled by the catalog's decode speeds."""
        if model in self.warm:
            return self.warm[model]
        if model in self.cold:
            return max(0.0, self.cold[model] - self.load_s(model))
        speed = self.spec(model).tokens_per_s
        prior = self.est_tokens.get(model, 0) / speed * self.load_scale if speed > 0 else 0.0
        ratio = [t * (self.spec(m).tokens_per_s / speed if speed > 0 else 1.0) or t for m, t in self.warm.items()]
        return max(prior, sum(ratio) / len(ratio) if ratio else 0.0)

    def first_call_s(self, model: str) -> float:
        """The part beyond the catalog's load time of a call that loads its model (learned: it may load slower)."""
        if model in self.cold:
            return max(0.0, self.cold[model] - self.load_s(model))
        return self.call_s(model)

    def remaining_s(self, model: str, now: float, loading: bool) -> float:
        """How long the model's latest call may still run, pessimistically (mean plus spread)."""
        return self.last_start.get(model, now) + self.whole_s(model, loading) - now

    def whole_s(self, model: str, loading: bool) -> float:
        """A whole call, pessimistically; `loading`: the call loads the model first."""
        typical = self.load_s(model) + self.first_call_s(model) if loading else self.call_s(model)
        return typical + DEVIATIONS * self.spread.get(model, 0.0)
