"""Shared builders for the routing tests: catalogs and seeded random routing instances."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from app.domain.knobs import RoutingParams
from app.domain.models import TASK_TYPES, Agent, RoutingProblem, Subtask
from app.routing import load_agents

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture
def heavy() -> list[Agent]:
    return load_agents(CONFIGS / "agents_heavy.json")


@pytest.fixture
def fast() -> list[Agent]:
    return load_agents(CONFIGS / "agents_fast.json")


def make_random_problem(seed: int, n_agents: int, n_subtasks: int, n_steps: int) -> RoutingProblem:
    """Tight G (room for one to three models), random loaded sets, some context limits that bite."""
    rng = np.random.default_rng(seed)
    agents = [
        Agent(
            name=f"m{i}",
            cost_per_token=float(rng.uniform(0.2, 2.0)),
            max_ctx=int(rng.choice([2048, 8192, 32768])),
            capabilities={t: float(rng.uniform(0.3, 0.95)) for t in TASK_TYPES},
            vram_gb=float(np.round(rng.uniform(1.0, 10.0), 1)),
            load_time_ms=float(rng.uniform(200, 3000)),
        )
        for i in range(n_agents)
    ]
    vram = sorted(a.vram_gb for a in agents)
    gpu = float(rng.uniform(vram[0], sum(vram[: min(3, n_agents)]) + 0.5))
    subtasks = [
        Subtask(
            id=f"s{k}",
            task_type=str(rng.choice(TASK_TYPES)),
            estimated_tokens=int(rng.integers(50, 2500)),
            difficulty=float(rng.uniform(0, 1)),
        )
        for k in range(n_subtasks)
    ]
    steps = {s.id: int(rng.integers(0, n_steps)) for s in subtasks}
    loaded = [a.name for a in agents if rng.random() < 0.35]
    params = RoutingParams(lambda_token=float(rng.uniform(0, 1)), lambda_switch=float(rng.uniform(0, 1.5)))
    return RoutingProblem(
        subtasks=subtasks, step_of=steps, agents=agents, gpu_vram_gb=gpu, loaded=loaded, params=params
    )


@pytest.fixture
def random_problem() -> Callable[[int, int, int, int], RoutingProblem]:
    return make_random_problem
