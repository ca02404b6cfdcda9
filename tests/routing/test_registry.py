"""The routing registry is the one place a mode is named: every other module reads it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from app.core.errors import ValidationFailed
from app.domain.knobs import KnobOverrides, RoutingKnobs, knob_description
from app.domain.models import Agent
from app.routing import Estimator, route_sync
from app.routing.registry import (
    COMPARE_CHOICES,
    DEFAULT_MODE,
    EXACT,
    PLANNER,
    ROUTERS,
    ROUTING_MODES,
    SELECTABLE,
    expand_compare,
    get_router,
)
from app.storage.models import Job

APP = Path(__file__).resolve().parents[2] / "app"
REGISTRY = APP / "routing" / "registry.py"
# (file, literal) pairs that are not routing modes.
NOT_MODES = {
    ("bench/sandbox.py", "random"),  # the allowed-import list names Python's `random` module
    ("bench/artifacts.py", "oracle"),  # the original tool's artifact field `oracle` (per-subtask best models)
}
STORAGE_DEFAULT = ("storage/models.py", DEFAULT_MODE)  # storage may not import routing: checked equal below


def _mode_literals() -> list[str]:
    found = []
    for path in APP.rglob("*.py"):
        if path == REGISTRY:
            continue
        rel = path.relative_to(APP).as_posix()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            literal = isinstance(node, ast.Constant) and node.value in ROUTING_MODES
            if literal and (rel, node.value) not in NOT_MODES | {STORAGE_DEFAULT}:
                found.append(f"{rel}:{node.lineno} {node.value!r}")
    return found


def test_no_mode_name_outside_the_registry() -> None:
    assert _mode_literals() == []


def test_storage_default_is_the_registry_default() -> None:
    assert Job(id="j", tenant_id="t").routing == DEFAULT_MODE


def test_registry_names_and_groups() -> None:
    assert set(ROUTERS) == set(ROUTING_MODES)
    assert all(ROUTERS[name].name == name for name in ROUTERS)
    assert EXACT in SELECTABLE and PLANNER in SELECTABLE and DEFAULT_MODE == EXACT
    assert "oracle" not in SELECTABLE and "single" not in SELECTABLE
    assert expand_compare("both") == [EXACT, PLANNER]
    assert expand_compare("all") == list(SELECTABLE)
    assert expand_compare("greedy") == ["greedy"]
    assert set(COMPARE_CHOICES) == {*SELECTABLE, "both", "all"}
    with pytest.raises(ValueError, match="unknown --compare 'oracle'"):
        expand_compare("oracle")
    with pytest.raises(ValueError, match="unknown routing mode 'nope'"):
        get_router("nope")
    assert get_router(PLANNER).needs_chat and not get_router(EXACT).needs_chat


def test_every_router_runs_through_one_interface(heavy: list[Agent]) -> None:
    from app.domain.models import RoutingProblem, Subtask

    problem = RoutingProblem(
        subtasks=[Subtask(id="a", task_type="code"), Subtask(id="b", task_type="math")],
        agents=heavy,
        gpu_vram_gb=16,
    )
    for name, router in ROUTERS.items():
        if router.needs_chat:
            with pytest.raises(ValueError, match="needs a chat function"):
                route_sync(problem, Estimator(), name)
            continue
        if router.needs_model_file:  # pref_router end to end: tests/bench_runner/test_pref_router.py
            with pytest.raises(ValidationFailed, match="needs a trained router file"):
                route_sync(problem, Estimator(), name)
            continue
        plan = route_sync(problem, Estimator(), name, single_model=heavy[0].name)
        assert plan.mode == name and {a.subtask_id for a in plan.assignments} == {"a", "b"}


def test_overrides_declare_every_knob_with_the_same_bounds() -> None:
    assert set(KnobOverrides.model_fields) == {*RoutingKnobs.model_fields, "gpu_vram_gb"}
    for name, field in RoutingKnobs.model_fields.items():
        assert knob_description(name) == field.description
        assert KnobOverrides.model_fields[name].default is None
    assert knob_description("gpu_vram_gb") == "VRAM budget G in GB"
    for bad in ({"lambda_switch": -1}, {"token_scale": 0}, {"horizon_depth": 33}, {"lambda_token": float("nan")}):
        with pytest.raises(ValueError):
            KnobOverrides(**bad)  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            RoutingKnobs(**bad)  # type: ignore[arg-type]
    base = RoutingKnobs(lambda_switch=0.7, horizon_depth=3)
    knobs = base.overridden(KnobOverrides(lambda_switch=0.0, gpu_vram_gb=4))
    assert (knobs.lambda_switch, knobs.horizon_depth, knobs.lambda_token) == (0.0, 3, 0.5)


def test_reading_the_registry_imports_no_solver() -> None:
    code = "import sys, app.routing.registry; print(sorted(m for m in ('cvxpy', 'scipy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
