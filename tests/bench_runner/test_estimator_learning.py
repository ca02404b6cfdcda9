"""Online learning on the sim, where the truth is known: train on one seed, evaluate frozen on a held-out seed."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from app.backends.sim import SimBackend
from app.bench.runner import BenchConfig, BenchResult, run_bench
from app.cli import main
from app.domain.models import TASK_TYPES, Agent
from app.routing import Estimator, load_agents

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# The priors say the bigger models are better; on this "GPU" the small one is right far more often.
TRUTH = {
    "gemma2:2b": dict.fromkeys(TASK_TYPES, 0.95),
    "qwen2.5-coder:7b": dict.fromkeys(TASK_TYPES, 0.15),
    "llama3.1:8b": dict.fromkeys(TASK_TYPES, 0.15),
    "phi4:14b": dict.fromkeys(TASK_TYPES, 0.15),
}


def _bench(
    agents: list[Agent], out: Path, seed: int, estimator: Estimator, *, freeze: bool, truth: object = TRUTH
) -> BenchResult:
    cfg = BenchConfig(
        benchmarks=["code_math_mix"], compare="lp", limit=40, seed=seed, gpu_vram_gb=8.0, dry_run=True,
        freeze_estimator=freeze, output_dir=str(out),
    )  # fmt: skip
    sim = SimBackend(agents, 40.0, seed=seed, true_quality=truth, name="sim-truth")  # type: ignore[arg-type]
    return asyncio.run(run_bench(cfg, backend=sim, agents=agents, estimator=estimator))


def test_trained_estimator_routes_at_least_as_well_as_the_priors_on_a_held_out_seed(tmp_path: Path) -> None:
    agents = load_agents(CONFIGS / "agents_heavy.json")
    trained = _bench(agents, tmp_path / "train", 1, Estimator(), freeze=False).trained()
    learned = trained.view(agents)["quality"]
    assert learned and all(r["n"] >= 1 for r in learned)
    # Scored results moved the estimate of what the router tried towards the truth, with an interval.
    llama_math = next(r for r in learned if r["model"] == "llama3.1:8b" and r["task_type"] == "math")
    assert llama_math["estimate"] < llama_math["prior"] - 0.15
    gemma = max((r for r in learned if r["model"] == "gemma2:2b"), key=lambda r: r["n"])
    assert gemma["estimate"] > gemma["prior"] + 0.15 and gemma["n"] > llama_math["n"]
    assert 0 < gemma["ci95"] < llama_math["ci95"] < 0.6  # more observations, a narrower interval
    assert (
        trained.learned.speed["llama3.1:8b"].load_ms == next(a for a in agents if a.name == "llama3.1:8b").load_time_ms
    )
    frozen = Estimator.from_dict(trained.to_dict(), frozen=True)
    after = _bench(agents, tmp_path / "eval_trained", 2, frozen, freeze=True).report["modes"]["lp"]
    before = _bench(agents, tmp_path / "eval_priors", 2, Estimator(frozen=True), freeze=True).report["modes"]["lp"]
    assert after["n"] == before["n"] > 10
    assert after["avg_score"] >= before["avg_score"] + 0.2, (after["avg_score"], before["avg_score"])
    assert frozen.to_dict() == trained.to_dict()  # evaluation did not learn


def test_learning_does_not_hurt_when_the_priors_are_right(tmp_path: Path) -> None:
    agents = load_agents(CONFIGS / "agents_heavy.json")
    trained = _bench(agents, tmp_path / "train", 1, Estimator(), freeze=False, truth=None).trained()
    frozen = Estimator.from_dict(trained.to_dict(), frozen=True)
    after = _bench(agents, tmp_path / "a", 2, frozen, freeze=True, truth=None).report["modes"]["lp"]
    before = _bench(agents, tmp_path / "b", 2, Estimator(frozen=True), freeze=True, truth=None).report["modes"]["lp"]
    assert after["avg_score"] >= before["avg_score"]


def test_bench_cli_trains_then_evaluates_frozen(tmp_path: Path, monkeypatch: object) -> None:
    est = tmp_path / "est.json"
    base = ["bench", "--dry_run", "--benchmark", "code_math_mix", "--compare", "lp", "--limit", "6"]
    assert main([*base, "--seed", "1", "--output_dir", str(tmp_path / "a"), "--estimator_out", str(est)]) == 0
    saved = json.loads(est.read_text())
    assert saved["version"] == 2 and saved["quality"] and saved["speed"]
    argv = [*base, "--seed", "2", "--output_dir", str(tmp_path / "b"), "--estimator_in", str(est)]
    assert main([*argv, "--freeze_estimator", "--estimator_out", str(tmp_path / "same.json")]) == 0
    assert json.loads((tmp_path / "same.json").read_text()) == saved


def test_judge_scores_feed_the_estimator_and_keep_their_rationale(tmp_path: Path) -> None:
    agents = load_agents(CONFIGS / "agents_heavy.json")
    cfg = BenchConfig(
        benchmarks=["code_math_mix"], compare="lp", limit=4, seed=3, gpu_vram_gb=8.0, dry_run=True, judge=True,
        output_dir=str(tmp_path),
    )  # fmt: skip
    sim = SimBackend(agents, 40.0, seed=3)
    result = asyncio.run(run_bench(cfg, backend=sim, agents=agents, estimator=Estimator()))
    judged = [r for r in result.rows if r["judge_score"] is not None]
    scored = [r for r in result.rows if r["score_method"] not in ("heuristic", "not_run")]
    assert judged and all(isinstance(r["judge_rationale"], str) and r["judge_rationale"] for r in judged)
    observations = sum(result.trained().observations.values())
    assert observations == len(judged) + len(scored)
    saved = [json.loads(line) for line in (tmp_path / "outputs.jsonl").read_text().splitlines()]
    assert any(r["judge_rationale"] for r in saved)
