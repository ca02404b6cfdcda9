"""mt_bench: multi-turn questions (FastChat's question.jsonl) from local files; each turn is its own subtask."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.bench.mbpp import read_jsonl
from app.bench.scoring import score_example
from app.bench.types import BenchSubtask, Example, ScoreResult, sample_indices
from app.core.errors import ConfigError

# MT-Bench categories mapped onto the router's task types.
CATEGORY_TYPES = {
    "writing": "creative", "roleplay": "creative", "reasoning": "reasoning", "math": "math", "coding": "code",
    "extraction": "extraction", "stem": "reasoning", "humanities": "reasoning",
}  # fmt: skip


def find_files(data_dir: str | Path) -> list[Path]:
    """question.jsonl in <data_dir>/mt_bench/ or <data_dir>/, else mt_bench*.jsonl there; or the file itself."""
    root = Path(data_dir).expanduser()
    if root.is_file():
        return [root]
    for folder in (root / "mt_bench", root):
        if (folder / "question.jsonl").is_file():
            return [folder / "question.jsonl"]
        found = sorted(folder.glob("mt_bench*.jsonl")) if folder.is_dir() else []
        if found:
            return found
    return []


def row_to_example(row: Mapping[str, Any], where: str) -> Example:
    """Turn k depends on turn k-1: the orchestrator hands it that turn's answer, so the conversation stays a
    conversation (with its earlier questions quoted), one routed and judged subtask per turn."""
    turns = row.get("turns")
    if not isinstance(turns, list) or not turns or not all(isinstance(t, str) and t.strip() for t in turns):
        raise ConfigError(f"{where}: 'turns' must be a non-empty list of strings")
    category = str(row.get("category") or "reasoning")
    task_type = CATEGORY_TYPES.get(category, "reasoning")
    refs = row.get("reference") or []
    subs = []
    for k, turn in enumerate(turns):
        if k == 0:
            text = turn
        else:
            earlier = "\n".join(f"User (turn {j + 1}): {t}" for j, t in enumerate(turns[:k]))
            text = (
                f"This continues a conversation. Earlier:\n{earlier}\n(Your previous answer is below.)\n\n"
                f"User (turn {k + 1}): {turn}"
            )
        subs.append(
            BenchSubtask(
                id=f"turn{k + 1}",
                task_type=task_type,
                description=text,
                estimated_tokens=512,
                difficulty=0.5,
                deps=[f"turn{k}"] if k else [],
                scorer="judge_only",
                expected=refs[k] if k < len(refs) else None,
            )
        )
    qid = row.get("question_id")
    if qid is None:
        raise ConfigError(f"{where}: missing 'question_id'")
    meta = {"question_id": qid, "category": category, "turns": list(turns)}
    return Example(id=f"mt_bench-{qid}", benchmark="mt_bench", subtasks=subs, metadata=meta)


class MTBench:
    """opts: data_dir (required). No automatic score: answers are judged pairwise across modes (--mtbench_judge)."""

    name = "mt_bench"

    def load(self, limit: int, seed: int, **opts: Any) -> list[Example]:
        data_dir = opts.get("data_dir")
        files = find_files(data_dir) if data_dir else []
        if not files:
            where = f"no question.jsonl or mt_bench*.jsonl under {data_dir}" if data_dir else "no --data_dir given"
            raise ConfigError(
                f"mt_bench: {where}. Pass --data_dir with FastChat's MT-Bench question.jsonl "
                "(question_id, category, turns: [...], optional reference)."
            )
        rows = [(r, f"{p}:{n}") for p in files for n, r in enumerate(read_jsonl([p]), 1)]
        idx = sample_indices(len(rows), limit, f"{self.name}:{seed}")
        return [row_to_example(*rows[i]) for i in idx]

    def score(self, example: Example, outputs: Mapping[str, str], *, code_eval: bool) -> dict[str, ScoreResult]:
        return score_example(example, outputs, code_eval=code_eval)
