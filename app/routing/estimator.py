"""Utility estimator: quality P, token cost C_tok and switch cost C_sw per (agent, subtask), learned online."""

from __future__ import annotations

import json
import math
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.core.errors import ValidationFailed
from app.domain.knobs import RoutingParams
from app.domain.models import TASK_TYPES, Agent, RoutingProblem, Subtask
from app.routing.learning import Learned, QualityStats, SpeedStats

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

# P = cap * (1 - DIFFICULTY_SLOPE * d * (1 - cap)): the loss at difficulty d is proportional to (1 - cap), so a
# strong model degrades less than a weak one and difficulty can move a subtask to the stronger (dearer) model.
# With slope 1 and d = 1 the quality is cap**2 (0.9 -> 0.81, 0.45 -> 0.20).
DIFFICULTY_SLOPE = 1.0
_TYPE_INDEX = {t: k for k, t in enumerate(TASK_TYPES)}


def adjusted_quality(cap: FloatArray | float, difficulty: FloatArray | float) -> FloatArray:
    c = np.asarray(cap, dtype=np.float64)
    return np.asarray(c * (1.0 - DIFFICULTY_SLOPE * np.asarray(difficulty) * (1.0 - c)), dtype=np.float64)


def capability_from_score(score: float, difficulty: float) -> float:
    """Invert adjusted_quality so a score observed at difficulty d updates the difficulty-free capability."""
    k = DIFFICULTY_SLOPE * difficulty
    if k <= 1e-12:
        return score
    # k c^2 + (1 - k) c - score = 0, positive root (monotone in score, 0 -> 0, 1 -> 1).
    return (-(1.0 - k) + math.sqrt((1.0 - k) ** 2 + 4.0 * k * score)) / (2.0 * k)


@dataclass(frozen=True)
class Estimates:
    """Matrices are [n_agents, n_subtasks]; vectors are per agent. C_sw is kept raw and loaded-adjusted."""

    agents: list[str]
    subtask_ids: list[str]
    steps: IntArray
    n_steps: int
    quality: FloatArray
    est_tokens: FloatArray
    token_cost: FloatArray
    utility_base: FloatArray
    feasible: BoolArray
    ctx_ok: BoolArray
    vram: FloatArray
    switch_cost_raw: FloatArray
    switch_cost: FloatArray
    loaded: BoolArray
    gpu_vram_gb: float
    lambda_token: float
    lambda_switch: float

    @property
    def utility(self) -> FloatArray:
        """Single-decision utility: switch cost charged once per cell, zero when the model is loaded."""
        return np.asarray(self.utility_base - self.lambda_switch * self.switch_cost[:, None], dtype=np.float64)

    def to_rows(self) -> list[dict[str, Any]]:
        util = self.utility
        return [
            {
                "model": name,
                "subtask_id": sid,
                "quality": round(float(self.quality[i, m]), 6),
                "token_cost": round(float(self.token_cost[i, m]), 6),
                "switch_cost": round(float(self.switch_cost[i]), 6),
                "utility": round(float(util[i, m]), 6),
                "feasible": bool(self.feasible[i, m]),
            }
            for i, name in enumerate(self.agents)
            for m, sid in enumerate(self.subtask_ids)
        ]


@dataclass(frozen=True)
class Cell:
    """estimates() of one (agent, subtask) cell as plain floats: the proxy's single-request path."""

    agent: str
    quality: float
    token_cost: float
    switch_cost: float
    utility: float
    feasible: bool
    loaded: bool
    vram: float


class Estimator:
    """Priors come from each Agent. Scored results (benchmark scorers, the judge) update quality per (model, task
    type) as a posterior mean in which the prior counts as `prior_weight` observations; every measured call updates
    the model's load time and speed; output lengths calibrate a per-model token multiplier (EMA)."""

    def __init__(
        self,
        *,
        ema_alpha: float = 0.2,
        token_ema_alpha: float = 0.2,
        frozen: bool = False,
        prior_weight: float = 5.0,
    ) -> None:
        self.ema_alpha = ema_alpha  # kept for saved states of version 1
        self.token_ema_alpha = token_ema_alpha
        self.prior_weight = prior_weight
        self.frozen = frozen
        self.learned = Learned()
        self.token_multiplier: dict[str, float] = {}

    @property
    def quality(self) -> dict[tuple[str, str], float]:
        """Mean observed capability per (model, task type) (without the prior)."""
        return {k: v.mean for k, v in self.learned.quality.items()}

    @property
    def observations(self) -> dict[tuple[str, str], int]:
        return {k: v.n for k, v in self.learned.quality.items()}

    def capability(self, agent: Agent, task_type: str) -> float:
        """The capability routing uses: the prior, moved towards the observed scores as they accumulate."""
        stats = self.learned.quality.get((agent.name, task_type))
        prior = agent.capability(task_type)
        return prior if stats is None else stats.posterior(prior, self.prior_weight)

    def load_time_ms(self, agent: Agent) -> float:
        speed = self.learned.speed.get(agent.name)
        return speed.load_ms if speed is not None and speed.loads else agent.load_time_ms

    def observe_score(self, agent: str, task_type: str, score: float, *, difficulty: float = 0.0) -> None:
        """Learn from a *scored* result (benchmark or judge) only; the score is mapped back to capability scale."""
        if self.frozen:
            return
        if task_type not in _TYPE_INDEX:
            raise ValueError(f"unknown task type {task_type!r}")
        if not 0.0 <= score <= 1.0 or not 0.0 <= difficulty <= 1.0:
            raise ValueError(f"score {score} and difficulty {difficulty} must be within [0, 1]")
        observed = min(1.0, max(0.0, capability_from_score(score, difficulty)))
        self.learned.quality.setdefault((agent, task_type), QualityStats()).add(observed)

    def observe_call(
        self,
        agent: str,
        *,
        load_ms: float = 0.0,
        prompt_tokens: int = 0,
        prompt_ms: float = 0.0,
        eval_tokens: int = 0,
        eval_ms: float = 0.0,
    ) -> None:
        """Learn load time (when the call loaded the model) and prefill / decode speed from a measured call."""
        if self.frozen:
            return
        speed = self.learned.speed.setdefault(agent, SpeedStats())
        if load_ms > 0:
            speed.add_load(load_ms)
        speed.add_call(prompt_tokens, prompt_ms, eval_tokens, eval_ms)

    def observe_tokens(self, agent: str, estimated: float, actual: float) -> None:
        """Calibrate the per-agent output-length multiplier from estimated vs actual *output* tokens."""
        if self.frozen or estimated <= 0 or actual < 0:
            return
        ratio = min(10.0, max(0.1, actual / estimated))
        prev = self.token_multiplier.get(agent, 1.0)
        self.token_multiplier[agent] = (1.0 - self.token_ema_alpha) * prev + self.token_ema_alpha * ratio

    def cells(
        self, subtask: Subtask, agents: list[Agent], loaded: Collection[str], gpu_vram_gb: float, prm: RoutingParams
    ) -> list[Cell]:
        """The same numbers as estimates() for a one-subtask problem, in plain Python: a handful of agents costs
        no array building, which is most of a one-subtask call (tests check the two agree)."""
        d, t, need = subtask.difficulty, subtask.task_type, subtask.context_tokens
        out = []
        for a in agents:
            cap = self.capability(a, t)
            quality = cap * (1.0 - DIFFICULTY_SLOPE * d * (1.0 - cap))
            mult = self.token_multiplier.get(a.name, a.token_multiplier)
            token_cost = a.cost_per_token * (mult * subtask.estimated_tokens) / prm.token_scale
            is_loaded = a.name in loaded
            switch = 0.0 if is_loaded else self.load_time_ms(a) / (prm.switch_t_scale_ms * 3.0)
            utility = quality - prm.lambda_token * token_cost - prm.lambda_switch * switch
            feasible = a.max_ctx >= need and a.vram_gb <= gpu_vram_gb + 1e-9
            out.append(Cell(a.name, quality, token_cost, switch, utility, feasible, is_loaded, a.vram_gb))
        return out

    def estimates(self, problem: RoutingProblem) -> Estimates:
        agents, subtasks, prm = problem.agents, problem.subtasks, problem.params
        caps = np.array(
            [[self.capability(a, t) for t in TASK_TYPES] for a in agents],
            dtype=np.float64,
        )
        type_idx = np.array([_TYPE_INDEX[s.task_type] for s in subtasks], dtype=np.int64)
        difficulty = np.array([s.difficulty for s in subtasks], dtype=np.float64)
        tokens = np.array([s.estimated_tokens for s in subtasks], dtype=np.float64)
        ctx_need = np.array([s.context_tokens for s in subtasks], dtype=np.float64)
        mult = np.array([self.token_multiplier.get(a.name, a.token_multiplier) for a in agents])
        cost = np.array([a.cost_per_token for a in agents], dtype=np.float64)
        vram = np.array([a.vram_gb for a in agents], dtype=np.float64)
        max_ctx = np.array([a.max_ctx for a in agents], dtype=np.float64)
        loaded_names = set(problem.loaded)  # names outside the catalog (e.g. a planner model) are ignored
        loaded = np.array([a.name in loaded_names for a in agents], dtype=np.bool_)
        quality = adjusted_quality(caps[:, type_idx], difficulty[None, :])
        est_tokens = mult[:, None] * tokens[None, :]
        token_cost = cost[:, None] * est_tokens / prm.token_scale
        ctx_ok = max_ctx[:, None] >= ctx_need[None, :]
        sw_raw = np.array([self.load_time_ms(a) for a in agents], dtype=np.float64) / (prm.switch_t_scale_ms * 3.0)
        return Estimates(
            agents=[a.name for a in agents],
            subtask_ids=[s.id for s in subtasks],
            steps=np.array([problem.step(s.id) for s in subtasks], dtype=np.int64),
            n_steps=problem.n_steps,
            quality=quality,
            est_tokens=est_tokens,
            token_cost=token_cost,
            utility_base=quality - prm.lambda_token * token_cost,
            feasible=ctx_ok & (vram <= problem.gpu_vram_gb + 1e-9)[:, None],
            ctx_ok=ctx_ok,
            vram=vram,
            switch_cost_raw=sw_raw,
            switch_cost=np.where(loaded, 0.0, sw_raw),
            loaded=loaded,
            gpu_vram_gb=problem.gpu_vram_gb,
            lambda_token=prm.lambda_token,
            lambda_switch=prm.lambda_switch,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": 2,
            "ema_alpha": self.ema_alpha,
            "token_ema_alpha": self.token_ema_alpha,
            "prior_weight": self.prior_weight,
            "quality": [
                {"agent": a, "task_type": t, "quality": q.mean, "n": q.n, "m2": q.m2}
                for (a, t), q in sorted(self.learned.quality.items())
            ],
            "speed": {a: v.view() for a, v in sorted(self.learned.speed.items())},
            "token_multiplier": dict(sorted(self.token_multiplier.items())),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, frozen: bool = False) -> Estimator:
        est = cls(
            ema_alpha=float(data.get("ema_alpha", 0.2)),
            token_ema_alpha=float(data.get("token_ema_alpha", 0.2)),
            prior_weight=float(data.get("prior_weight", 5.0)),
            frozen=frozen,
        )
        for row in data.get("quality", []):
            # "subtask_type": the original tool's QualityEstimator JSON, read as is.
            key = (str(row["agent"]), str(row["task_type"] if "task_type" in row else row["subtask_type"]))
            mean, n, m2 = float(row["quality"]), int(row.get("n", 0)), float(row.get("m2", 0.0))
            if key[1] not in _TYPE_INDEX or not 0.0 <= mean <= 1.0 or n < 0 or m2 < 0:
                raise ValueError(f"bad quality row {row!r}")
            est.learned.quality[key] = QualityStats(max(n, 1), mean, m2)  # version 1 rows may carry n = 0
        for agent, row in (data.get("speed") or {}).items():
            est.learned.speed[str(agent)] = SpeedStats.from_view(dict(row))
        est.token_multiplier = {str(k): float(v) for k, v in data.get("token_multiplier", {}).items()}
        return est

    def view(self, agents: list[Agent]) -> dict[str, Any]:
        """What has been learned for a catalog: per model and task type the prior, observations, the estimate
        routing uses and its 95% half-width; per model the measured load time and speeds."""
        rows = []
        for (name, task), stats in sorted(self.learned.quality.items()):
            agent = next((a for a in agents if a.name == name), None)
            if agent is None:
                continue
            prior = agent.capability(task)
            rows.append(
                {
                    "model": name,
                    "task_type": task,
                    "prior": prior,
                    "n": stats.n,
                    "observed_mean": round(stats.mean, 4),
                    "estimate": round(stats.posterior(prior, self.prior_weight), 4),
                    "ci95": round(stats.half_width(prior, self.prior_weight), 4),
                }
            )
        names = {a.name for a in agents}
        speed = {a: v.view() for a, v in sorted(self.learned.speed.items()) if a in names}
        return {"frozen": self.frozen, "prior_weight": self.prior_weight, "quality": rows, "speed": speed}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path, *, frozen: bool = False) -> Estimator:
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")), frozen=frozen)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValidationFailed(f"{path}: invalid estimator state: {exc}") from exc
