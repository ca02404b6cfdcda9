"""`swarm models`, `--ensure_models`, `write-agents --preset auto|auto_fast` against a simulated Ollama on loopback
with only some catalog models installed."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.backends.sim import SimBackend
from app.cli import main
from app.cli.sim import build_sim_app
from app.routing import load_agents
from tests.api.conftest import CONFIGS, serve

HEAVY = str(CONFIGS / "agents_heavy.json")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("SWARM_RUNS_DIR", str(tmp_path / "runs"))
    for name in ("SWARM_CONFIG_FILE", "SWARM_DEBUG", "SWARM_BACKEND", "SWARM_AGENTS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def sim() -> Iterator[tuple[SimBackend, list[str]]]:
    backend = SimBackend(load_agents(HEAVY), 24.0, seed=1, installed=["gemma2:2b"])
    with serve(build_sim_app(backend)) as url:
        yield backend, ["--backend", "ollama", "--ollama_base_url", url, "--agents_file", HEAVY]


def _free_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def test_models_lists_catalog_installed_and_loaded(
    sim: tuple[SimBackend, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, flags = sim
    assert main(["models", "--json", *flags]) == 0
    listing = json.loads(capsys.readouterr().out)
    rows = {r["model"]: r for r in listing["models"]}
    assert listing["missing"] == ["qwen2.5-coder:7b", "llama3.1:8b", "phi4:14b"]
    assert rows["gemma2:2b"]["installed"] is True and rows["gemma2:2b"]["size_gb"] == 2.0
    assert rows["phi4:14b"]["installed"] is False and rows["phi4:14b"]["size_gb"] is None
    assert not any(r["loaded"] for r in rows.values())


def test_models_ensure_pulls_what_is_missing(
    sim: tuple[SimBackend, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    backend, flags = sim
    assert main(["models", "--ensure", "--json", *flags]) == 0
    out = capsys.readouterr()
    assert json.loads(out.out)["missing"] == []
    assert backend.installed_names == {"gemma2:2b", "qwen2.5-coder:7b", "llama3.1:8b", "phi4:14b"}
    assert "pulled qwen2.5-coder:7b, llama3.1:8b, phi4:14b" in out.err


def test_bench_with_a_missing_model_fails_before_it_starts(
    sim: tuple[SimBackend, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, flags = sim
    out = tmp_path / "bench_out"
    argv = ["bench", "--benchmark", "code_math_mix", "--compare", "lp", "--limit", "1", "--output_dir", str(out)]
    assert main([*argv, *flags]) == 2
    err = capsys.readouterr().err.strip()
    assert "qwen2.5-coder:7b, llama3.1:8b, phi4:14b" in err and "--ensure_models" in err
    assert len(err.splitlines()) == 1 and not out.exists()
    assert main([*argv, *flags, "--ensure_models"]) == 0
    rows = [json.loads(line) for line in (out / "outputs.jsonl").read_text().splitlines()]
    assert rows and all(r["status"] == "done" for r in rows)


def test_run_skips_missing_models_and_says_so(
    sim: tuple[SimBackend, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    _, flags = sim
    assert main(["run", "--query", "What is 2+2?", "--json", *flags]) == 0
    out = capsys.readouterr()
    assert "not installed, not routed" in out.err and "phi4:14b" in out.err
    assert {s["model"] for r in json.loads(out.out) for s in r["subtasks"]} == {"gemma2:2b"}


def test_write_agents_auto_reads_installed_models(sim: tuple[SimBackend, list[str]], tmp_path: Path) -> None:
    _, flags = sim
    out = tmp_path / "mine.json"
    assert main(["write-agents", "--preset", "auto", "--out", str(out), *flags]) == 0
    assert [a["name"] for a in json.loads(out.read_text())["agents"]] == ["gemma2:2b"]


@pytest.mark.parametrize("preset", ["auto", "auto_fast"])
def test_write_agents_never_falls_back_silently(
    preset: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = _free_url()
    out = tmp_path / "mine.json"
    assert main(["write-agents", "--preset", preset, "--out", str(out), "--ollama_base_url", url]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("swarm write-agents: error: cannot read the installed models of " + url)
    assert not out.exists()


def test_calibrate_over_the_ollama_api(sim: tuple[SimBackend, list[str]], tmp_path: Path) -> None:
    """The Ollama code path (HTTP, /api/ps, load_duration) against the simulated Ollama."""
    _, flags = sim
    out = tmp_path / "cal.json"
    assert main(["calibrate", "--out", str(out), "--items", "1", "--loads", "2", *flags]) == 0
    models = json.loads(out.read_text())["calibration"]["models"]
    assert list(models) == ["gemma2:2b"]  # only what is installed
    rec = models["gemma2:2b"]
    assert rec["vram_gb"]["value"] == 2.0 and rec["vram_gb"]["source"] == "measured"
    assert rec["load_time_ms"] == {"value": 600.0, "source": "measured", "samples": [600.0, 600.0]}
    assert rec["tokens_per_s"]["value"] == pytest.approx(60.0, rel=1e-3)


def test_sim_ollama_rejects_an_unknown_installed_model(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sim-ollama", "--installed", "gemma2:2b,nope:1b", "--port", "1"]) == 2
    assert "--installed: 'nope:1b' is not in the catalog" in capsys.readouterr().err
