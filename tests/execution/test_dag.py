"""TaskDAG: validation errors, layers, ready set and the MPC horizon (finished nodes excluded)."""

from __future__ import annotations

import pytest

from app.core.errors import DagError
from app.domain.models import Subtask
from app.execution.dag import TaskDAG


def st(sid: str, *deps: str) -> Subtask:
    return Subtask(id=sid, task_type="code", deps=list(deps))


def test_validation_errors() -> None:
    with pytest.raises(DagError, match="duplicate subtask id 'a'"):
        TaskDAG([st("a"), st("a")])
    with pytest.raises(DagError, match="unknown subtask 'zz'"):
        TaskDAG([st("a", "zz")])
    with pytest.raises(DagError, match="cycle among subtasks: a, b"):
        TaskDAG([st("a", "b"), st("b", "a")])
    with pytest.raises(DagError, match="itself"):
        TaskDAG([st("a", "a")])
    with pytest.raises(DagError, match="at least one"):
        TaskDAG([])


def test_layers_and_horizon() -> None:
    # a -> b -> d ; a -> c ; e independent
    dag = TaskDAG([st("a"), st("b", "a"), st("c", "a"), st("d", "b"), st("e")])
    assert dag.layers() == [["a", "e"], ["b", "c"], ["d"]]
    assert dag.ready([]) == ["a", "e"]
    assert dag.horizon([], 0) == {"a": 0, "e": 0}
    assert dag.horizon([], 1) == {"a": 0, "e": 0, "b": 1, "c": 1}
    # after a and e finish, they leave the horizon and b, c become step 0
    assert dag.horizon(["a", "e"], 1) == {"b": 0, "c": 0, "d": 1}
    assert dag.descendants("a") == {"b", "c", "d"}
    assert [p.id for p in dag.parents("d")] == ["b"]
