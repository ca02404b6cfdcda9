"""Receding horizon: a 3-node chain under tight G keeps or switches models depending on λ_switch, and the
seed's relaxation bug (phi4 12.5 GB under G = 8) is reproduced by lp_relaxed and absent from lp."""

from __future__ import annotations

from app.domain.knobs import RoutingParams
from app.domain.models import Agent, RoutingProblem, Subtask
from app.routing import Estimator, route_sync


def _specialists() -> list[Agent]:
    base = {"reasoning": 0.6, "creative": 0.6, "extraction": 0.6, "summarize": 0.6}
    return [
        Agent(name="coder", cost_per_token=1.0, max_ctx=8192, vram_gb=6.0, load_time_ms=3000,
              capabilities={**base, "code": 0.95, "math": 0.40}),
        Agent(name="mathy", cost_per_token=1.0, max_ctx=8192, vram_gb=6.0, load_time_ms=3000,
              capabilities={**base, "code": 0.40, "math": 0.95}),
    ]  # fmt: skip


def _chain(lambda_switch: float) -> RoutingProblem:
    subtasks = [
        Subtask(id="write", task_type="code", difficulty=0.5),
        Subtask(id="prove", task_type="math", difficulty=0.5, deps=["write"]),
        Subtask(id="fix", task_type="code", difficulty=0.5, deps=["prove"]),
    ]
    return RoutingProblem(
        subtasks=subtasks,
        step_of={"write": 0, "prove": 1, "fix": 2},
        agents=_specialists(),
        gpu_vram_gb=8.0,  # one 6 GB model at a time
        loaded=["coder"],
        params=RoutingParams(lambda_switch=lambda_switch),
    )


def test_chain_keeps_one_model_when_switch_cost_dominates() -> None:
    plan = route_sync(_chain(lambda_switch=2.0), Estimator(), "lp")
    assert [a.model for a in plan.assignments] == ["coder", "coder", "coder"]
    assert plan.resident_per_step == [["coder"], ["coder"], ["coder"]]
    assert plan.loads == [] and plan.evictions == []


def test_chain_switches_when_quality_gain_dominates() -> None:
    plan = route_sync(_chain(lambda_switch=0.05), Estimator(), "lp")
    assert [a.model for a in plan.assignments] == ["coder", "mathy", "coder"]
    assert plan.resident_per_step == [["coder"], ["mathy"], ["coder"]]
    assert [(e.model, e.step) for e in plan.loads] == [("mathy", 1), ("coder", 2)]
    assert [(e.model, e.step) for e in plan.evictions] == [("coder", 1), ("mathy", 2)]
    assert plan.vram_peak_gb == 6.0


def _seed_case(heavy: list[Agent]) -> RoutingProblem:
    # The seed's wb1/s1: a math subtask of 150 tokens, heavy catalog, G = 8, gemma2:2b loaded.
    return RoutingProblem(
        subtasks=[Subtask(id="s1", task_type="math", estimated_tokens=150, difficulty=0.5)],
        agents=heavy,
        gpu_vram_gb=8.0,
        loaded=["gemma2:2b"],
    )


def test_lp_relaxed_reproduces_the_seed_vram_violation(heavy: list[Agent]) -> None:
    plan = route_sync(_seed_case(heavy), Estimator(), "lp_relaxed")
    assert plan.model_for("s1") == "phi4:14b"
    assert plan.vram_violation_gb == 12.5 - 8.0
    assert plan.vram_peak_gb == 12.5
    assert plan.routing_source == "lp_relaxed"


def test_lp_on_the_seed_case_respects_g(heavy: list[Agent]) -> None:
    plan = route_sync(_seed_case(heavy), Estimator(), "lp")
    assert plan.model_for("s1") != "phi4:14b"
    assert plan.vram_violation_gb == 0.0 and plan.vram_peak_gb <= 8.0
    oracle = route_sync(_seed_case(heavy), Estimator(), "oracle")
    assert plan.objective == oracle.objective
