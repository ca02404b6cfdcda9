"""mmlu and mt_bench from local files (small self-made samples in tests/bench/data), final-letter scoring,
pairwise judging with positions swapped, and both benchmarks end to end on the sim with --mtbench_judge."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app.bench.choice import final_letter
from app.bench.pairwise import judge_swapped, parse_pair
from app.bench.registry import get_benchmark
from app.cli import main
from app.core.errors import ConfigError

DATA = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("Answer: C", "C"),
        ("B", "B"),
        ("B) 42", "B"),
        ("**Answer: D**", "D"),
        ("A good approach is to add them: 7 + 5 = 12, so the answer is (c).", "C"),
        ("I think A is wrong.\nThe correct answer is B", "B"),
        ("Option A looks tempting, but the final answer: C.", "C"),
        ("A dog is a mammal, and so is a whale.", None),  # the original read this as "A"
        ("The answer is a function of x.", None),
        ("Answer: E", None),  # not one of four choices
        ("First, A. Then reconsider.\nAnswer: B\n", "B"),
    ],
)
def test_final_letter(text: str, letter: str | None) -> None:
    assert final_letter(text) == letter


def test_mmlu_reads_csv_and_jsonl() -> None:
    bench = get_benchmark("mmlu")
    examples = bench.load(100, 0, data_dir=str(DATA))
    assert len(examples) == 5 + 4 + 2
    subjects = {ex.metadata["subject"] for ex in examples}
    assert subjects == {"elementary_arithmetic", "everyday_science", "geography"}
    ex = next(e for e in examples if "7 + 5" in e.subtasks[0].description)
    assert "C. 12" in ex.subtasks[0].description and ex.subtasks[0].expected == "C"
    assert bench.score(ex, {"answer": "7 + 5 = 12.\nAnswer: C"}, code_eval=False)["answer"].score == 1.0
    assert bench.score(ex, {"answer": "A sum of 12, so the answer is B"}, code_eval=False)["answer"].score == 0.0
    ocean = next(e for e in examples if "ocean" in e.subtasks[0].description)
    assert ocean.subtasks[0].expected == "D"  # answer index 3
    assert [e.id for e in bench.load(4, 1, data_dir=str(DATA))] == [e.id for e in bench.load(4, 1, data_dir=str(DATA))]


def test_mt_bench_keeps_turns_as_turns() -> None:
    examples = get_benchmark("mt_bench").load(10, 0, data_dir=str(DATA))
    assert len(examples) == 4
    ex = next(e for e in examples if e.metadata["question_id"] == 902)
    t1, t2 = ex.subtasks
    assert (t1.id, t2.id, t2.deps) == ("turn1", "turn2", ["turn1"])
    assert t1.task_type == "math" and t1.scorer == "judge_only" and t2.expected == "15 pens"
    assert "3 for 2 dollars" in t2.description and "with 10 dollars" in t2.description


@pytest.mark.parametrize("name", ["mmlu", "mt_bench"])
def test_missing_data_is_one_clear_error(name: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"{name}: no .*--data_dir"):
        get_benchmark(name).load(5, 0, data_dir=str(tmp_path))


@dataclass
class _Reply:
    content: str


def _judge(rule: str) -> Any:
    async def chat(messages: list[dict[str, str]], options: dict[str, Any]) -> _Reply:
        text = messages[1]["content"]
        a = text.split("ANSWER A:\n")[1].split("\n\nANSWER B:")[0]
        if rule == "position":
            return _Reply('{"winner": "A", "rationale": "first is best"}')
        if rule == "broken":
            return _Reply("not json")
        winner = "A" if "good" in a else "B"
        return _Reply(json.dumps({"winner": winner, "rationale": f"{winner} is good"}))

    return chat


def test_swapped_judging() -> None:
    fair = asyncio.run(judge_swapped(_judge("content"), "q", "a good answer", "a poor answer"))
    assert fair.outcome == "first" and fair.forward.winner == "A" and fair.backward.winner == "B"
    assert asyncio.run(judge_swapped(_judge("content"), "q", "poor", "good one")).outcome == "second"
    biased = asyncio.run(judge_swapped(_judge("position"), "q", "x", "y"))
    assert biased.outcome == "tie"  # always "A" in both orders: position bias cancels out
    assert asyncio.run(judge_swapped(_judge("broken"), "q", "x", "y")).outcome is None
    assert parse_pair('{"winner": "draw", "rationale": ""}').winner == "tie"


def test_mmlu_and_mt_bench_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_DATABASE_URL", f"sqlite:///{tmp_path / 'swarm.db'}")
    out = tmp_path / "b"
    argv = ["bench", "--dry_run", "--benchmark", "mmlu", "--benchmark", "mt_bench", "--data_dir", str(DATA),
            "--compare", "both", "--limit", "4", "--seed", "1", "--mtbench_judge",
            "--output_dir", str(out)]  # fmt: skip
    code = main(argv)
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    for mode in ("lp", "llm"):
        assert set(report["modes"][mode]["by_benchmark"]) == {"mmlu"}  # mt_bench has no automatic score
        assert report["modes"][mode]["score_methods"]["choice"] == 4
    pair = report["mtbench_pairwise"]
    assert (pair["mode_a"], pair["mode_b"]) == ("lp", "llm") and pair["n_judged"] + pair["n_failed"] == 8
    assert sum(pair["wins"].values()) == pair["n_judged"] > 0
    assert pair["win_rate_a"] + pair["win_rate_b"] + pair["tie_rate"] == pytest.approx(1.0)
    assert set(pair["by_turn"]) <= {"turn1", "turn2"}
    judgements = [json.loads(line) for line in (out / "mtbench_judgements.jsonl").read_text().splitlines()]
    assert len(judgements) == 8 and all(j["forward"] and j["backward"] for j in judgements)
