"""code_eval without real isolation is refused up front: HTTP 422 naming the reason, CLI exit 2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.backends.sim import SimBackend
from app.bench import isolation, sandbox
from app.cli import main as cli_main
from app.core.settings import Settings
from app.main import create_app
from app.routing import load_agents

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.fixture
def no_isolation(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(isolation, "bwrap_works", lambda: False)
    monkeypatch.setattr(sandbox, "_unshare_prefix", lambda: [])
    monkeypatch.delenv("SWARM_SANDBOX", raising=False)
    yield
    isolation._state.pop("mode", None)


def test_http_bench_code_eval_is_422(settings: Settings, no_isolation: None) -> None:
    sim = SimBackend(load_agents(CONFIGS / "agents_heavy.json"), 8.0)
    with TestClient(create_app(settings, backend=sim)) as c:
        body = {"benchmarks": ["code_math_mix"], "limit": 2, "dry_run": True, "code_eval": True}
        resp = c.post("/bench", json=body)
        assert resp.status_code == 422
        err = resp.json()["error"]
        assert err["code"] == "sandbox_unavailable" and "no real isolation" in err["message"]
        assert c.post("/bench", json={**body, "code_eval": False}).status_code == 202


def test_http_bench_code_eval_runs_in_unsafe_mode_when_opted_in(settings: Settings, no_isolation: None) -> None:
    sim = SimBackend(load_agents(CONFIGS / "agents_heavy.json"), 8.0)
    with TestClient(create_app(settings.model_copy(update={"sandbox": "unsafe"}), backend=sim)) as c:
        body = {"benchmarks": ["code_math_mix"], "limit": 2, "dry_run": True, "code_eval": True}
        assert c.post("/bench", json=body).status_code == 202


def test_cli_bench_code_eval_exits_2(
    tmp_path: Path, no_isolation: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["bench", "--benchmark", "code_math_mix", "--limit", "2", "--dry_run", "--code_eval"]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert "no real isolation" in err and len(err.strip().splitlines()) == 1
