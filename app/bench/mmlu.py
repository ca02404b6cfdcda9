"""mmlu: multiple-choice questions from local files, in the original release's CSV layout or as JSONL."""

from __future__ import annotations

import csv
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.bench.mbpp import read_jsonl
from app.bench.scoring import score_example
from app.bench.types import BenchSubtask, Example, ScoreResult, sample_indices
from app.core.errors import ConfigError

LETTERS = "ABCD"
_SPLIT = re.compile(r"_(test|dev|val)$")


def find_files(data_dir: str | Path) -> list[Path]:
    """<data_dir>/mmlu/ if present, else data_dir: `<subject>_test.csv` files (the original release: question, four
    options, answer letter; no header) and `mmlu*.jsonl` files (question, choices, answer, subject)."""
    root = Path(data_dir).expanduser()
    if root.is_file():
        return [root]
    if (root / "mmlu").is_dir():
        root = root / "mmlu"
    if not root.is_dir():
        return []
    return sorted([*root.glob("*_test.csv"), *root.glob("mmlu*.jsonl")])


def _answer_letter(value: Any, where: str) -> str:
    text = str(value).strip()
    if text.isdigit() and int(text) < len(LETTERS):
        return LETTERS[int(text)]
    if text.upper() in LETTERS and len(text) == 1:
        return text.upper()
    raise ConfigError(f"{where}: answer {value!r} is neither A-D nor 0-3")


def read_rows(paths: list[Path]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in paths:
        if path.suffix == ".csv":
            subject = _SPLIT.sub("", path.stem)
            with path.open(encoding="utf-8", newline="") as fh:
                for n, cols in enumerate(csv.reader(fh), 1):
                    if len(cols) != 6:
                        raise ConfigError(f"{path}:{n}: expected 6 columns (question, A, B, C, D, answer)")
                    answer = _answer_letter(cols[5], f"{path}:{n}")
                    rows.append({"subject": subject, "question": cols[0], "choices": cols[1:5], "answer": answer})
            continue
        for n, rec in enumerate(read_jsonl([path]), 1):
            choices = rec.get("choices")
            if not isinstance(choices, list) or len(choices) != 4 or "question" not in rec:
                raise ConfigError(f"{path}:{n}: needs 'question' and four 'choices'")
            rows.append(
                {"subject": str(rec.get("subject") or "general"), "question": str(rec["question"]),
                 "choices": [str(c) for c in choices], "answer": _answer_letter(rec.get("answer"), f"{path}:{n}")}
            )  # fmt: skip
    return rows


def row_to_example(row: Mapping[str, Any], index: int) -> Example:
    options = "\n".join(f"{letter}. {text}" for letter, text in zip(LETTERS, row["choices"], strict=True))
    text = (
        f"The following is a multiple choice question about {str(row['subject']).replace('_', ' ')}.\n\n"
        f"{row['question']}\n{options}\n\nThink briefly, then give the letter of the correct option on the last "
        "line as 'Answer: X'."
    )
    sub = BenchSubtask(
        id="answer",
        task_type="reasoning",
        description=text,
        estimated_tokens=192,
        difficulty=0.5,
        scorer="choice",
        expected=row["answer"],
    )
    meta = {"subject": row["subject"], "choices": list(row["choices"])}
    return Example(id=f"mmlu-{row['subject']}-{index}", benchmark="mmlu", subtasks=[sub], metadata=meta)


class MMLU:
    """opts: data_dir (required: a folder with the CSV or JSONL files, or one file)."""

    name = "mmlu"

    def load(self, limit: int, seed: int, **opts: Any) -> list[Example]:
        data_dir = opts.get("data_dir")
        files = find_files(data_dir) if data_dir else []
        if not files:
            where = f"no <subject>_test.csv or mmlu*.jsonl under {data_dir}" if data_dir else "no --data_dir given"
            raise ConfigError(
                f"mmlu: {where}. Pass --data_dir with the MMLU test CSVs (question, A, B, C, D, answer; no header) "
                "or JSONL rows {question, choices: [4], answer: 0-3 or A-D, subject}."
            )
        rows = read_rows(files)
        idx = sample_indices(len(rows), limit, f"{self.name}:{seed}")
        return [row_to_example(rows[i], i) for i in idx]

    def score(self, example: Example, outputs: Mapping[str, str], *, code_eval: bool) -> dict[str, ScoreResult]:
        return score_example(example, outputs, code_eval=code_eval)
