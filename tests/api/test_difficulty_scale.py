"""Subtask difficulty on the original tool's 1..5 scale is accepted wherever subtasks are, mapped onto 0..1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from app.bench.types import BenchSubtask
from app.core.settings import Settings
from app.domain.models import Subtask, unit_difficulty
from app.execution.decomposer import _difficulty

from .test_jobs_api import make_client


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with make_client(settings) as c:
        yield c


@pytest.mark.parametrize(("given", "internal"), [(0.0, 0.0), (0.3, 0.3), (1, 1.0), (1.5, 0.125), (2.0, 0.25),
                                                 (3, 0.5), (5, 1.0), (8, 1.0)])  # fmt: skip
def test_mapping(given: float, internal: float) -> None:
    assert unit_difficulty(given) == pytest.approx(internal)
    assert Subtask(id="a", task_type="math", difficulty=given).difficulty == pytest.approx(internal)
    sub = BenchSubtask(id="a", task_type="math", difficulty=given, scorer="numeric", expected=1)
    assert sub.difficulty == pytest.approx(internal)


def test_decomposer_reads_either_scale() -> None:
    assert _difficulty(4) == pytest.approx(0.75) and _difficulty(0.2) == 0.2
    assert _difficulty("hard") == 0.5 and _difficulty(50) == 1.0 and _difficulty(None) == pytest.approx(0.5)


def test_route_and_jobs_accept_the_original_scale(client: TestClient) -> None:
    sub = {"id": "a", "task_type": "math", "description": "17 * 6", "difficulty": 2.0}
    resp = client.post("/route", json={"subtasks": [sub], "gpu_vram_gb": 8})
    assert resp.status_code == 200, resp.text
    rows = resp.json()["model_task_estimates"]
    same = client.post("/route", json={"subtasks": [{**sub, "difficulty": 0.25}], "gpu_vram_gb": 8}).json()
    assert rows == same["model_task_estimates"]  # 2.0 on the original scale is 0.25 here
    easy = client.post("/route", json={"subtasks": [{**sub, "difficulty": 0.0}], "gpu_vram_gb": 8}).json()
    assert rows != easy["model_task_estimates"]
    job = client.post("/jobs", params={"wait": "true"}, json={"subtasks": [sub], "gpu_vram_gb": 8})
    assert job.status_code == 200, job.text
    for bad in (11, -1, "hard"):
        resp = client.post("/route", json={"subtasks": [{**sub, "difficulty": bad}]})
        assert resp.status_code == 422 and "difficulty" in resp.text, resp.text
