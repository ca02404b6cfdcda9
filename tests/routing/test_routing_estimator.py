"""Estimator: agent-dependent difficulty, scored-only updates, frozen mode, JSON round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.core.errors import ValidationFailed
from app.domain.knobs import RoutingParams
from app.domain.models import Agent, RoutingProblem, Subtask
from app.routing import Estimator, route_single, route_sync
from app.routing.estimator import adjusted_quality, capability_from_score


def _pair(heavy: list[Agent]) -> list[Agent]:
    return [a for a in heavy if a.name in ("gemma2:2b", "phi4:14b")]


def test_difficulty_flips_the_winner(heavy: list[Agent]) -> None:
    agents = _pair(heavy)
    loaded = [a.name for a in agents]  # both loaded and G large: only quality and tokens matter
    easy = Subtask(id="q", task_type="math", estimated_tokens=650, difficulty=0.0)
    hard = easy.model_copy(update={"difficulty": 1.0})
    pick = [route_single(s, agents, loaded, 24.0, RoutingParams(), Estimator()).model for s in (easy, hard)]
    assert pick == ["gemma2:2b", "phi4:14b"]


def test_stronger_models_degrade_less() -> None:
    caps = np.array([0.45, 0.9])
    drop = adjusted_quality(caps, 0.0) - adjusted_quality(caps, 1.0)
    assert drop[0] > drop[1] > 0


def test_capability_from_score_inverts_the_difficulty_model() -> None:
    for cap in (0.0, 0.3, 0.77, 1.0):
        for d in (0.0, 0.4, 1.0):
            assert capability_from_score(float(adjusted_quality(cap, d)), d) == pytest.approx(cap)


def _problem(agents: list[Agent], loaded: list[str]) -> RoutingProblem:
    subtasks = [
        Subtask(id="a", task_type="code", estimated_tokens=400, difficulty=0.3),
        Subtask(id="b", task_type="math", estimated_tokens=9000, difficulty=0.8),
    ]
    return RoutingProblem(subtasks=subtasks, agents=agents, gpu_vram_gb=8.0, loaded=loaded)


def test_estimates_shapes_costs_and_masks(heavy: list[Agent]) -> None:
    est = Estimator().estimates(_problem(heavy, ["gemma2:2b"]))
    assert est.quality.shape == est.token_cost.shape == est.feasible.shape == (4, 2)
    gemma, qwen, phi4 = 0, 1, 3
    assert est.token_cost[qwen, 0] == pytest.approx(1.2 * 400 / 1000)
    assert est.utility_base[qwen, 0] == pytest.approx(est.quality[qwen, 0] - 0.5 * est.token_cost[qwen, 0])
    assert est.switch_cost_raw[gemma] == pytest.approx(600 / 4500) and est.switch_cost[gemma] == 0.0
    assert est.switch_cost[qwen] == pytest.approx(1200 / 4500)
    # 9000 tokens exceed the 8192 context of everyone but qwen; phi4 exceeds G.
    assert est.feasible[:, 1].tolist() == [False, True, False, False]
    assert not est.feasible[phi4].any()
    rows = est.to_rows()
    assert len(rows) == 8
    assert {"model", "subtask_id", "quality", "token_cost", "switch_cost", "utility"} <= set(rows[0])


def test_only_scored_observations_update(heavy: list[Agent]) -> None:
    estimator = Estimator()
    problem = _problem(heavy, [])
    before = estimator.estimates(problem).quality.copy()
    route_sync(problem, estimator, "lp")  # routing must not teach the estimator anything
    assert np.array_equal(estimator.estimates(problem).quality, before)
    estimator.observe_score("gemma2:2b", "code", 1.0)
    after = estimator.estimates(problem).quality
    assert after[0, 0] > before[0, 0]
    assert np.array_equal(after[1:], before[1:])
    estimator.observe_tokens("qwen2.5-coder:7b", estimated=100, actual=300)
    assert estimator.estimates(problem).est_tokens[1, 0] == pytest.approx(400 * (0.8 + 0.2 * 3.0))


def test_frozen_estimator_ignores_updates(heavy: list[Agent]) -> None:
    estimator = Estimator(frozen=True)
    estimator.observe_score("gemma2:2b", "code", 1.0)
    estimator.observe_tokens("gemma2:2b", 100, 500)
    assert estimator.quality == {} and estimator.token_multiplier == {}


def test_observe_score_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        Estimator().observe_score("m", "poetry", 0.5)
    with pytest.raises(ValueError):
        Estimator().observe_score("m", "code", 1.5)


def test_save_load_round_trip(tmp_path: Path, heavy: list[Agent]) -> None:
    estimator = Estimator()
    estimator.observe_score("phi4:14b", "math", 0.4, difficulty=0.6)
    estimator.observe_score("phi4:14b", "math", 0.7)
    estimator.observe_tokens("gemma2:2b", 200, 260)
    path = tmp_path / "est.json"
    estimator.save(path)
    loaded = Estimator.load(path)
    assert loaded.quality == estimator.quality and loaded.token_multiplier == estimator.token_multiplier
    problem = _problem(heavy, ["gemma2:2b"])
    assert np.array_equal(loaded.estimates(problem).utility, estimator.estimates(problem).utility)
    assert Estimator.load(path, frozen=True).frozen


def test_load_rejects_a_corrupt_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ValidationFailed, match=r"bad\.json"):
        Estimator.load(path)


@pytest.mark.parametrize("seed", range(60))
def test_scalar_cells_match_the_matrix_estimates(seed: int) -> None:
    # route_single (the proxy's path) uses Estimator.cells; every other router uses estimates(): same numbers.
    from tests.routing.conftest import make_random_problem

    rng = np.random.default_rng(seed)
    base = make_random_problem(seed, n_agents=int(rng.integers(1, 9)), n_subtasks=1, n_steps=1)
    sub = base.subtasks[0].model_copy(update={"context_tokens": int(rng.choice([0, 3000, 20000]))})
    problem = base.model_copy(update={"subtasks": [sub]})
    est = Estimator()
    if seed % 2:  # learned qualities and token multipliers override the priors
        est.observe_score(base.agents[0].name, sub.task_type, float(rng.uniform(0, 1)), difficulty=sub.difficulty)
        est.observe_tokens(base.agents[-1].name, 100.0, float(rng.uniform(10, 900)))
    matrix = est.estimates(problem)
    cells = est.cells(sub, base.agents, set(base.loaded), base.gpu_vram_gb, base.params)
    assert [c.agent for c in cells] == matrix.agents
    for i, c in enumerate(cells):
        assert c.quality == pytest.approx(float(matrix.quality[i, 0]), abs=1e-12)
        assert c.token_cost == pytest.approx(float(matrix.token_cost[i, 0]), abs=1e-12)
        assert c.switch_cost == pytest.approx(float(matrix.switch_cost[i]), abs=1e-12)
        assert c.utility == pytest.approx(float(matrix.utility[i, 0]), abs=1e-12)
        assert c.feasible == bool(matrix.feasible[i, 0]) and c.loaded == bool(matrix.loaded[i])
    util = np.where(matrix.feasible[:, 0], matrix.utility[:, 0], -np.inf)
    if np.isfinite(util).any():
        pick = route_single(sub, base.agents, base.loaded, base.gpu_vram_gb, base.params, est)
        assert util[matrix.agents.index(pick.model)] == pytest.approx(util.max(), abs=1e-12)


def test_quality_is_a_posterior_with_counts_and_a_narrowing_interval(heavy: list[Agent]) -> None:
    estimator = Estimator(prior_weight=2.0)
    gemma = next(a for a in heavy if a.name == "gemma2:2b")
    prior = gemma.capability("math")
    estimator.observe_score("gemma2:2b", "math", 1.0)
    assert estimator.capability(gemma, "math") == pytest.approx((2 * prior + 1.0) / 3)
    widths = []
    for _ in range(20):
        estimator.observe_score("gemma2:2b", "math", 1.0)
        widths.append(estimator.view(heavy)["quality"][0]["ci95"])
    row = estimator.view(heavy)["quality"][0]
    assert row["n"] == 21 and row["observed_mean"] == 1.0 and row["estimate"] > 0.9
    assert widths == sorted(widths, reverse=True) and widths[-1] < widths[0]


def test_measured_calls_teach_load_time_and_speed(heavy: list[Agent]) -> None:
    estimator = Estimator()
    estimator.observe_call(
        "gemma2:2b", load_ms=1000.0, prompt_tokens=80, prompt_ms=100.0, eval_tokens=50, eval_ms=500.0
    )
    estimator.observe_call("gemma2:2b", load_ms=0.0, prompt_tokens=20, prompt_ms=100.0, eval_tokens=50, eval_ms=500.0)
    speed = estimator.learned.speed["gemma2:2b"]
    assert (speed.loads, speed.load_ms, speed.decode_tps, speed.prefill_tps) == (1, 1000.0, 100.0, 500.0)
    gemma = next(a for a in heavy if a.name == "gemma2:2b")
    assert estimator.load_time_ms(gemma) == 1000.0 != gemma.load_time_ms
    problem = _problem(heavy, [])
    assert estimator.estimates(problem).switch_cost_raw[0] == pytest.approx(1000.0 / (1500.0 * 3))
    frozen = Estimator(frozen=True)
    frozen.observe_call("gemma2:2b", load_ms=5.0)
    assert frozen.learned.speed == {}


def test_version_1_states_still_load() -> None:
    old = {"version": 1, "quality": [{"agent": "a", "task_type": "math", "quality": 0.3, "n": 4}]}
    est = Estimator.from_dict(old)
    assert est.quality == {("a", "math"): 0.3} and est.observations == {("a", "math"): 4}
    again = Estimator.from_dict(est.to_dict())
    assert again.to_dict() == est.to_dict()
