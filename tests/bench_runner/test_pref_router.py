"""pref_router end to end on the sim: preferences judged by a deterministic judge (both orders, ties kept), a
TF-IDF + logistic model saved as JSON, routing by τ through the registry, `--compare all`, the τ sweep."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.backends.sim import SimBackend
from app.bench.experiments import SweepSpec, run_experiment
from app.bench.registry import get_benchmark, load_examples
from app.bench.runner import BenchConfig, private_sim, run_bench
from app.bench.simkeys import register_examples
from app.bench.train_router import Preference, collect, fit, training_set, write_outputs
from app.cli import main
from app.core.errors import ValidationFailed
from app.routing import Estimator, load_agents
from app.routing.pref_router import load_model, model_from_dict

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
STRONG, WEAK = "phi4:14b", "gemma2:2b"


@dataclass
class _Reply:
    content: str


def reference_judge(examples: list[Any], calls: list[tuple[str, str]]) -> Any:
    """Deterministic: an answer the benchmark scores 1 beats one it does not; equal scores are a tie. It records
    what it saw as A and B, so the test can check every pair was shown both ways."""
    subs = {s.description: (ex, s) for ex in examples for s in ex.subtasks}

    def correct(question: str, answer: str) -> bool:
        ex, sub = subs[question]
        return get_benchmark(ex.benchmark).score(ex, {sub.id: answer}, code_eval=False)[sub.id].score == 1.0

    async def chat(messages: list[dict[str, str]], options: dict[str, Any]) -> _Reply:
        text = messages[1]["content"]
        question = text.split("USER REQUEST:\n", 1)[1].split("\n\nANSWER A:\n", 1)[0]
        a = text.split("\n\nANSWER A:\n", 1)[1].split("\n\nANSWER B:\n", 1)[0]
        b = text.split("\n\nANSWER B:\n", 1)[1].split("\n\nREFERENCE ANSWER", 1)[0]
        calls.append((a, b))
        ca, cb = correct(question, a), correct(question, b)
        winner = "A" if ca and not cb else "B" if cb and not ca else "tie"
        return _Reply(json.dumps({"winner": winner, "rationale": f"A correct {ca}, B correct {cb}"}))

    return chat


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Preference], list[Any]]:
    agents = load_agents(CONFIGS / "agents_heavy.json")
    examples = load_examples(["code_math_mix"], 60, 0)
    examples = [e for e in examples if e.subtasks[0].scorer != "code"]  # no heuristic code scores in the labels
    sim = SimBackend(agents, 48.0, seed=3)
    register_examples(sim, examples)
    calls: list[tuple[str, str]] = []
    prefs = asyncio.run(collect(sim, reference_judge(examples, calls), examples, STRONG, WEAK))
    assert len(calls) == 2 * len(prefs)  # every pair judged twice
    for (a1, b1), (a2, b2) in zip(calls[::2], calls[1::2], strict=True):
        assert (a1, b1) == (b2, a2)  # ... with the positions swapped
    out = tmp_path_factory.mktemp("router")
    model = fit(prefs, "tfidf", STRONG, WEAK, {"benchmarks": ["code_math_mix"]})
    write_outputs(out, out / "router.json", model, prefs)
    return out / "router.json", prefs, examples


def test_preferences_keep_ties_as_ties(trained: tuple[Path, list[Preference], list[Any]]) -> None:
    path, prefs, _ = trained
    outcomes = [p.outcome for p in prefs]
    assert {"strong", "tie"} <= set(outcomes)  # phi4 is right where gemma is not, often; both right is a tie
    texts, labels, weights = training_set(prefs)
    ties = outcomes.count("tie")
    assert len(texts) == len(prefs) + ties  # a tie enters once per label ...
    assert sum(w for w, lab in zip(weights, labels, strict=True) if lab == 0) == pytest.approx(
        outcomes.count("weak") + 0.5 * ties
    )  # ... at half weight, never as a full weak win
    lines = (path.parent / "preferences.jsonl").read_text().splitlines()
    assert [json.loads(line)["outcome"] for line in lines] == outcomes
    with pytest.raises(ValidationFailed, match="one class only"):
        training_set([Preference("b", "e", "s", "q", "x", "y", "strong")] * 3)


def test_model_file_is_plain_json_and_matches_scikit_learn(trained: tuple[Path, list[Preference], list[Any]]) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    path, prefs, _ = trained
    data = json.loads(path.read_text())
    assert data["format"] == "swarm-pref-router/1" and data["kind"] == "tfidf"
    assert (data["strong_model"], data["weak_model"]) == (STRONG, WEAK)
    model = load_model(path)
    texts, labels, weights = training_set(prefs)
    vec = TfidfVectorizer(ngram_range=(1, 2), max_features=50_000, token_pattern=r"(?u)\b\w\w+\b")
    clf = LogisticRegression(max_iter=1000, class_weight="balanced").fit(
        vec.fit_transform(texts), labels, sample_weight=weights
    )
    probe = [p.prompt for p in prefs[:10]] + ["What is 17 * 6? Answer with a number.", "unseen words only"]
    want = clf.predict_proba(vec.transform(probe))[:, 1]
    assert np.allclose(model.prob_strong(probe), want, atol=1e-9)
    with pytest.raises(ValidationFailed, match="invalid router model"):
        model_from_dict({**data, "coef": data["coef"][:-1]})
    (path.parent / "pickle.json").write_bytes(b"\x80\x04K\x01.")
    with pytest.raises(ValidationFailed, match="not a router JSON file"):
        load_model(path.parent / "pickle.json")


def _bench(path: Path, out: Path, tau: float, compare: str = "pref_router") -> Any:
    agents = load_agents(CONFIGS / "agents_heavy.json")
    cfg = BenchConfig(benchmarks=["code_math_mix"], compare=compare, limit=12, seed=5, gpu_vram_gb=16.0,
                      dry_run=True, router_model=str(path), router_tau=tau, output_dir=str(out))  # fmt: skip
    return asyncio.run(run_bench(cfg, backend=private_sim(cfg, agents), agents=agents, estimator=Estimator()))


def test_routes_by_tau(trained: tuple[Path, list[Preference], list[Any]], tmp_path: Path) -> None:
    path, _, _ = trained
    model = load_model(path)
    shares = []
    for tau in (0.0, 0.5, 1.0):
        result = _bench(path, tmp_path / f"t{tau}", tau)
        chosen = []
        for job in result.jobs:
            for sub in job.example.subtasks:
                got = job.result.subtasks[sub.id].model
                want = STRONG if model.prob_strong([sub.description])[0] >= tau else WEAK
                assert got == want, (sub.description, got, want)
                chosen.append(got == STRONG)
        assert {s["routing_source"] for j in result.jobs for s in j.result.steps} == {"pref_router"}
        shares.append(sum(chosen) / len(chosen))
    assert shares[0] == 1.0 and shares[2] == 0.0 and shares[0] >= shares[1] >= shares[2]


def test_compare_all_includes_pref_router_and_the_tau_sweep(
    trained: tuple[Path, list[Preference], list[Any]], tmp_path: Path
) -> None:
    path, _, _ = trained
    report = _bench(path, tmp_path / "all", 0.5, compare="all").report
    assert report["mode_order"][-1] == "pref_router" and "pref_router" in report["modes"]
    without = BenchConfig(benchmarks=["code_math_mix"], compare="all")
    assert "pref_router" not in without.modes  # no router file: `all` leaves it out instead of failing late
    with pytest.raises(ValueError, match="router_model"):
        BenchConfig(benchmarks=["code_math_mix"], compare="pref_router")
    agents = load_agents(CONFIGS / "agents_heavy.json")
    base = BenchConfig(benchmarks=["code_math_mix"], limit=4, seed=1, dry_run=True, router_model=str(path))
    spec = SweepSpec(suite="tau_sweep", lambda_switches=[0.2], gpu_vrams=[16.0], router_taus=[0.0, 1.0], base=base)
    out = asyncio.run(run_experiment(spec, backend_for=lambda c: private_sim(c, agents), agents=agents,
                                     estimator=Estimator(), root=tmp_path / "sweep"))  # fmt: skip
    reports = out["meta"]["reports"]
    assert [(r["routing_mode"], r["router_tau"]) for r in reports] == [("pref_router", 0.0), ("pref_router", 1.0)]
    assert reports[0]["mean_token_cost"] > reports[1]["mean_token_cost"]  # τ = 0: always the (dearer) strong model
    assert (tmp_path / "sweep" / "meta_summary.png").stat().st_size > 0


def test_cli_train_router_then_bench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_DATABASE_URL", f"sqlite:///{tmp_path / 'swarm.db'}")
    out = tmp_path / "train"
    argv = ["train-router", "--dry_run", "--benchmark", "code_math_mix", "--limit", "8", "--strong_model", STRONG,
            "--weak_model", WEAK, "--out_dir", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert load_model(out / "router.json").strong_model == STRONG
    assert len((out / "preferences.jsonl").read_text().splitlines()) == 8
    argv = ["run", "--dry_run", "--routing", "pref_router", "--router_model", str(out / "router.json"),
            "--router_tau", "0", "--gpu_vram_gb", "16", "--runs_dir", str(tmp_path / "runs"), "--run_id", "r",
            "--query", "17 * 6?"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads((tmp_path / "runs" / "r" / "summary.json").read_text())
    assert set(summary["jobs"][0]["task_to_model"].values()) == {STRONG}  # τ = 0, and phi4 fits in 16 GB
    bad = ["--strong_model", "nope:1b", "--out_dir", str(tmp_path / "x")]
    assert main(["train-router", "--dry_run", "--benchmark", "code_math_mix", "--limit", "2", *bad]) == 2
    assert main(["run", "--dry_run", "--routing", "pref_router", "--query", "q"]) == 2  # no --router_model
    assert main(["bench", "--dry_run", "--benchmark", "code_math_mix", "--compare", "pref_router"]) == 2
    sweep = ["experiment", "--dry_run", "--suite", "tau_sweep", "--runs_dir", str(tmp_path / "sweeps")]
    assert main(sweep) == 2 and not (tmp_path / "sweeps").exists()  # no router: one line, nothing created


def test_pref_router_never_breaks_the_budget(trained: tuple[Path, list[Preference], list[Any]]) -> None:
    from app.domain.models import RoutingProblem, Subtask
    from app.routing.pref_router import pref_assign

    path, _, _ = trained
    model = load_model(path)
    agents = load_agents(CONFIGS / "agents_heavy.json")
    subs = [Subtask(id=f"s{k}", task_type="math", description=f"What is {k} * 7?") for k in range(4)]
    texts = [s.description for s in subs]

    def assign(g: float, tau: float) -> list[str]:
        est = Estimator().estimates(RoutingProblem(subtasks=subs, agents=agents, gpu_vram_gb=g))
        return [est.agents[i] for i in pref_assign(est, texts, model, tau)]

    assert set(assign(16.0, 0.0)) == {STRONG}
    assert set(assign(8.0, 0.0)) == {WEAK}  # phi4 (12.5 GB) does not fit: the weak model takes it
    probs = model.prob_strong(texts)
    tau = float(np.median(probs)) + 1e-12  # splits the subtasks between the two models
    split = assign(16.0, tau)
    assert len(set(split)) == 2 or len(set(probs.round(12))) == 1
    together = assign(13.0, tau)  # 12.5 + 2 GB do not fit side by side: one model for the step
    assert len(set(together)) == 1


@pytest.mark.slow
def test_embedding_variant(trained: tuple[Path, list[Preference], list[Any]], tmp_path: Path) -> None:
    pytest.importorskip("sentence_transformers", reason="optional extra: pip install '.[router-embed]'")
    _, prefs, _ = trained
    model = fit(prefs, "sbert", STRONG, WEAK, {})
    assert model["kind"] == "embedding" and len(model["coef"]) == 384 and "vocabulary" not in model
    write_outputs(tmp_path, tmp_path / "embed.json", model, prefs)
    loaded = load_model(tmp_path / "embed.json")
    p = loaded.prob_strong([prefs[0].prompt, "Summarize: the cat sat on the mat."])
    assert p.shape == (2,) and ((p > 0) & (p < 1)).all()
    result = _bench(tmp_path / "embed.json", tmp_path / "b", 0.5)
    assert {s["routing_source"] for j in result.jobs for s in j.result.steps} == {"pref_router"}
