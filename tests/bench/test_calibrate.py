"""`swarm calibrate` on the simulator, whose true VRAM, load times, speeds and quality are known."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from app.backends.sim import SimBackend
from app.bench.calibrate import CalibrationConfig, calibrate, wilson
from app.cli import main
from app.routing import load_agents
from app.routing.agents import parse_agents

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TRUTH = {
    "gemma2:2b": {"math": 0.9, "reasoning": 0.2, "extraction": 0.7, "summarize": 0.5, "code": 0.4},
    "qwen2.5-coder:7b": {"math": 0.3, "reasoning": 0.85, "extraction": 0.2, "summarize": 0.9, "code": 0.9},
}


@pytest.fixture(scope="module")
def calibrated() -> dict[str, object]:
    agents = [a for a in load_agents(CONFIGS / "agents_heavy.json") if a.name in TRUTH]
    sim = SimBackend(agents, 16.0, seed=5, true_quality=TRUTH)
    return asyncio.run(calibrate(sim, agents, CalibrationConfig(items=40, loads=3, seed=3)))


def test_recovers_the_sims_vram_load_times_and_speed(calibrated: dict[str, object]) -> None:
    agents = {a.name: a for a in load_agents(CONFIGS / "agents_heavy.json")}
    models = calibrated["calibration"]["models"]  # type: ignore[index]
    for name, rec in models.items():
        truth = agents[name]
        assert rec["vram_gb"] == {"value": truth.vram_gb, "source": "measured", "field": "size_vram"}
        assert rec["load_time_ms"]["value"] == pytest.approx(truth.load_time_ms)
        assert rec["load_time_ms"]["samples"] == [truth.load_time_ms] * 3
        assert rec["tokens_per_s"]["value"] == pytest.approx(truth.tokens_per_s, rel=1e-3)
        assert rec["prefill_tokens_per_s"]["value"] == pytest.approx(truth.tokens_per_s * 8, rel=0.05)


def test_recovers_the_sims_quality_within_its_interval(calibrated: dict[str, object]) -> None:
    models = calibrated["calibration"]["models"]  # type: ignore[index]
    for name, truth in TRUTH.items():
        caps = models[name]["capabilities"]
        for task in ("math", "reasoning", "extraction", "summarize"):
            cell = caps[task]
            assert cell["source"] == "measured" and cell["n"] == 40
            assert cell["value"] == pytest.approx(truth[task], abs=0.2), (name, task, cell)
            lo, hi = cell["ci95"]
            assert lo <= cell["value"] <= hi and hi - lo < 0.4
        # Code is scored only when executed; without --code_eval it keeps the prior and says so.
        assert caps["code"]["source"] == "prior" and "code_eval off" in caps["code"]["why"]
        assert caps["creative"]["source"] == "prior"  # no benchmark scores creative writing


def test_the_file_is_a_valid_agents_file_with_measured_values(calibrated: dict[str, object]) -> None:
    agents = {a.name: a for a in parse_agents(calibrated, source="calibrated")}
    priors = {a.name: a for a in load_agents(CONFIGS / "agents_heavy.json")}
    assert agents["gemma2:2b"].capability("math") == pytest.approx(0.9, abs=0.2)
    assert agents["gemma2:2b"].capability("code") == priors["gemma2:2b"].capability("code")
    assert agents["qwen2.5-coder:7b"].vram_gb == priors["qwen2.5-coder:7b"].vram_gb


def test_wilson_interval() -> None:
    assert wilson(0.0, 0) == (0.0, 1.0)
    lo, hi = wilson(1.0, 10)
    assert 0.6 < lo < 0.75 and hi == 1.0
    lo, hi = wilson(0.5, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)


def test_cli_calibrate_on_the_sim(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "calibrated.json"
    argv = ["calibrate", "--dry_run", "--out", str(out), "--items", "2", "--loads", "1", "--models", "gemma2:2b"]
    assert main(argv) == 0
    written = json.loads(out.read_text())
    assert [a["name"] for a in written["agents"]] == ["gemma2:2b"]
    assert written["calibration"]["models"]["gemma2:2b"]["vram_gb"]["source"] == "measured"
    assert main(["calibrate", "--dry_run", "--out", str(out), "--models", "nope:1b"]) == 2
    assert "--models: 'nope:1b' is not installed" in capsys.readouterr().err


@pytest.mark.slow
def test_calibrate_measures_the_embedded_models(tmp_path: Path) -> None:
    """Real llama.cpp models: every footprint and speed value is measured (quality on a few items)."""
    pytest.importorskip("llama_cpp")
    out = tmp_path / "local.json"
    argv = ["calibrate", "--backend", "local", "--out", str(out), "--items", "1", "--loads", "2"]
    argv += ["--gpu_vram_gb", "1", "--seed", "1"]
    assert main(argv) == 0
    written = json.loads(out.read_text())
    models = written["calibration"]["models"]
    assert set(models) == {"smollm2:135m", "gemma3:270m"}
    for rec in models.values():
        assert rec["vram_gb"]["source"] == "measured" and 0.05 < rec["vram_gb"]["value"] < 1.0
        assert rec["load_time_ms"]["source"] == "measured" and len(rec["load_time_ms"]["samples"]) == 2
        assert rec["tokens_per_s"]["source"] == "measured" and rec["tokens_per_s"]["value"] > 1
        measured = [c for c in rec["capabilities"].values() if c["source"] == "measured"]
        assert len(measured) == 4 and all(c["n"] == 1 and 0.0 <= c["value"] <= 1.0 for c in measured)
    assert sorted(a.name for a in parse_agents(written, source="local")) == sorted(models)  # a valid agents file
