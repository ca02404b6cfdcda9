"""Baselines, the proxy fast path, mode validation, bad inputs and a quiet HiGHS."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pydantic
import pytest

from app.core.errors import InfeasibleError
from app.domain.knobs import RoutingParams
from app.domain.models import Agent, RoutingProblem, Subtask
from app.routing import ROUTING_MODES, Estimator, route_single, route_sync
from app.routing.baselines import oracle_solve
from app.routing.milp import solve_milp
from app.routing.router import route_exact

ROOT = Path(__file__).resolve().parents[2]


def _code_job(heavy: list[Agent], gpu: float = 8.0) -> RoutingProblem:
    return RoutingProblem(
        subtasks=[Subtask(id="c", task_type="code", difficulty=0.6)],
        agents=heavy,
        gpu_vram_gb=gpu,
        loaded=["gemma2:2b"],
    )


def test_greedy_does_not_prefer_loaded_models_unconditionally(heavy: list[Agent]) -> None:
    plan = route_sync(_code_job(heavy), Estimator(), "greedy")
    assert plan.model_for("c") == "qwen2.5-coder:7b"  # worth its switch cost over the loaded gemma
    switch_heavy = _code_job(heavy).model_copy(update={"params": RoutingParams(lambda_switch=5.0)})
    assert route_sync(switch_heavy, Estimator(), "greedy").model_for("c") == "gemma2:2b"


def test_greedy_and_random_respect_co_residency(random_problem: Callable[..., RoutingProblem]) -> None:
    for seed in range(30):
        problem = random_problem(seed, 5, 6, 2)
        vram = {a.name: a.vram_gb for a in problem.agents}
        for mode in ("greedy", "random"):
            try:
                plan = route_sync(problem, Estimator(), mode, seed=seed)
            except InfeasibleError:
                continue
            for resident in plan.resident_per_step:
                assert sum(vram[n] for n in resident) <= problem.gpu_vram_gb + 1e-9
            assert plan.objective <= route_sync(problem, Estimator(), "lp").objective + 1e-9


def test_random_is_seeded(random_problem: Callable[..., RoutingProblem]) -> None:
    problem = random_problem(1, 6, 6, 1).model_copy(update={"gpu_vram_gb": 100.0})
    picks = [[a.model for a in route_sync(problem, Estimator(), "random", seed=s).assignments] for s in (4, 4, 5)]
    assert picks[0] == picks[1] != picks[2]


def test_single_model(heavy: list[Agent]) -> None:
    plan = route_sync(_code_job(heavy), Estimator(), "single", single_model="llama3.1:8b")
    assert plan.model_for("c") == "llama3.1:8b"
    with pytest.raises(InfeasibleError, match=r"phi4:14b needs 12.5 GB"):
        route_sync(_code_job(heavy), Estimator(), "single", single_model="phi4:14b")
    with pytest.raises(ValueError, match="not in the catalog"):
        route_sync(_code_job(heavy), Estimator(), "single", single_model="nope")


def test_oracle_refuses_huge_instances(random_problem: Callable[..., RoutingProblem]) -> None:
    problem = random_problem(2, 12, 8, 3).model_copy(update={"gpu_vram_gb": 1000.0})
    with pytest.raises(ValueError, match="oracle too large"):
        oracle_solve(Estimator().estimates(problem))


def test_route_single_fast_path(heavy: list[Agent]) -> None:
    sub = Subtask(id="q", task_type="code", difficulty=0.6)
    a = route_single(sub, heavy, ["gemma2:2b"], 8.0, RoutingParams(), Estimator())
    assert a.model == "qwen2.5-coder:7b" and a.switch_cost == pytest.approx(1200 / 4500)
    b = route_single(sub, heavy, ["gemma2:2b"], 8.0, RoutingParams(lambda_switch=5.0), Estimator())
    assert b.model == "gemma2:2b" and b.switch_cost == 0.0
    # A model larger than G is never picked, even when it would be the best.
    math = Subtask(id="m", task_type="math", difficulty=1.0)
    assert route_single(math, heavy, [], 8.0, RoutingParams(lambda_token=0), Estimator()).model != "phi4:14b"


def test_unknown_mode_names_the_allowed_ones(heavy: list[Agent]) -> None:
    with pytest.raises(ValueError, match="allowed: lp, lp_relaxed, llm, greedy, random, pref_router, single, oracle"):
        route_sync(_code_job(heavy), Estimator(), "milp")
    assert ROUTING_MODES == ("lp", "lp_relaxed", "llm", "greedy", "random", "pref_router", "single", "oracle")


@pytest.mark.parametrize("mode", ["lp", "lp_relaxed", "greedy", "random", "oracle"])
def test_g_smaller_than_every_model_is_a_typed_error(heavy: list[Agent], mode: str) -> None:
    with pytest.raises(InfeasibleError, match=r"G=1\.5 GB.*smallest model is gemma2:2b \(2 GB\)"):
        route_sync(_code_job(heavy, gpu=1.5), Estimator(), mode)
    with pytest.raises(InfeasibleError, match=r"G=1\.5 GB"):
        route_single(Subtask(id="x", task_type="code"), heavy, [], 1.5, RoutingParams(), Estimator())


def test_milp_path_reports_infeasibility_too(heavy: list[Agent]) -> None:
    with pytest.raises(InfeasibleError, match=r"G=1\.5 GB"):
        route_exact(_code_job(heavy, gpu=1.5), Estimator(), method="milp")


def test_context_too_long_everywhere_is_infeasible(heavy: list[Agent]) -> None:
    long = Subtask(id="big", task_type="summarize", estimated_tokens=40_000)
    problem = RoutingProblem(subtasks=[long], agents=heavy, gpu_vram_gb=24.0)
    with pytest.raises(InfeasibleError, match="'big' fits no model"):
        route_sync(problem, Estimator(), "lp")


def test_pydantic_rejects_empty_agents_and_negative_tokens(heavy: list[Agent]) -> None:
    with pytest.raises(pydantic.ValidationError):
        RoutingProblem(subtasks=[Subtask(id="a", task_type="code")], agents=[], gpu_vram_gb=8.0)
    with pytest.raises(pydantic.ValidationError):
        Subtask(id="a", task_type="code", estimated_tokens=-5)


def test_highs_prints_nothing_to_stdout(capfd: pytest.CaptureFixture[str]) -> None:
    # The banner appears once per process, so check a fresh interpreter's fd 1 ...
    code = (
        "from app.routing import load_agents, Estimator, route_sync\n"
        "from app.routing.router import route_exact\n"
        "from app.domain.models import RoutingProblem, Subtask\n"
        "a = load_agents('configs/agents_heavy.json')\n"
        "p = RoutingProblem(subtasks=[Subtask(id='s', task_type='math')], agents=a, gpu_vram_gb=8)\n"
        "route_exact(p, Estimator(), method='milp'); route_sync(p, Estimator(), 'lp_relaxed')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout == ""
    # ... and this process's fd 1 across both solvers.
    capfd.readouterr()
    est = Estimator().estimates(
        RoutingProblem(subtasks=[Subtask(id="s", task_type="code")], agents=_agents(), gpu_vram_gb=8.0)
    )
    solve_milp(est, solvers=("HIGHS",))
    solve_milp(est, solvers=("SCIPY",))
    assert capfd.readouterr().out == ""


def _agents() -> list[Agent]:
    caps = {"code": 0.5}
    return [
        Agent(name=f"a{i}", cost_per_token=1.0, max_ctx=4096, capabilities=caps, vram_gb=2.0 + i, load_time_ms=100)
        for i in range(3)
    ]
