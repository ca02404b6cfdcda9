"""mbpp: loader for the MBPP JSONL format (task_id, text, code, test_list, test_setup_code) or `datasets`."""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from app.bench.scoring import score_example
from app.bench.types import BenchSubtask, CodeSpec, Example, ScoreResult, sample_indices
from app.core.errors import ConfigError


def find_files(data_dir: str | Path) -> list[Path]:
    """A .jsonl file itself, or <dir>/mbpp.jsonl, or every *.jsonl in the dir (sorted)."""
    path = Path(data_dir).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        main = path / "mbpp.jsonl"
        return [main] if main.is_file() else sorted(path.glob("*.jsonl"))
    return []


def read_jsonl(paths: Iterable[Path]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in paths:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{path}:{n}: not valid JSON ({exc.msg})") from exc
    return rows


def _from_datasets() -> list[dict[str, Any]] | None:
    try:
        import datasets
    except ImportError:
        return None
    return [dict(r) for r in datasets.load_dataset("mbpp", split="test")]


def load_rows(data_dir: str | Path | None) -> list[dict[str, Any]]:
    files = find_files(data_dir) if data_dir else []
    if files:
        return read_jsonl(files)
    rows = _from_datasets()
    if rows is not None:
        return rows
    where = f"no mbpp.jsonl or *.jsonl at {data_dir!s}" if data_dir else "no data_dir given"
    raise ConfigError(
        f"mbpp: {where}, and the optional 'datasets' package is not installed. Pass data_dir pointing to an "
        "MBPP JSONL file (fields task_id, text, code, test_list, test_setup_code) or install datasets."
    )


def entry_point(code: str, tests: list[str]) -> str:
    """The function the tests call: a def in the reference code whose name appears in the asserts."""
    try:
        names = [n.name for n in ast.walk(ast.parse(code)) if isinstance(n, ast.FunctionDef)]
    except SyntaxError:
        names = []
    joined = "\n".join(tests)
    for name in names:
        if f"{name}(" in joined:
            return name
    if names:
        return names[0]
    raise ConfigError("mbpp row: cannot find the tested function in its reference code")


def row_to_example(row: Mapping[str, Any]) -> Example:
    tests = [str(t) for t in row.get("test_list") or []]
    if not tests:
        raise ConfigError(f"mbpp task {row.get('task_id')}: empty test_list")
    ep = entry_point(str(row.get("code", "")), tests)
    setup = str(row.get("test_setup_code") or "") or None
    text = (
        f"{row['text']}\nWrite it as a Python function named `{ep}`. Your code should pass these tests:\n"
        + "\n".join(tests)
        + "\nReply with the code in one ```python block."
    )
    answer = BenchSubtask(
        id="solve",
        task_type="code",
        description=text,
        estimated_tokens=max(128, len(str(row.get("code", ""))) // 3 + 64),
        difficulty=0.4,
        scorer="code",
        code_spec=CodeSpec(entry_point=ep, asserts=tests, setup=setup),
    )
    meta = {"task_id": row.get("task_id"), "reference_code": row.get("code")}
    return Example(id=f"mbpp-{row.get('task_id')}", benchmark="mbpp", subtasks=[answer], metadata=meta)


class MBPP:
    """opts: data_dir (file or dir); sample=False takes the first `limit` rows instead of a seeded sample."""

    name = "mbpp"

    def load(self, limit: int, seed: int, **opts: Any) -> list[Example]:
        rows = load_rows(opts.get("data_dir"))
        idx = sample_indices(len(rows), limit, f"{self.name}:{seed}", sample=opts.get("sample", True))
        return [row_to_example(rows[i]) for i in idx]

    def score(self, example: Example, outputs: Mapping[str, str], *, code_eval: bool) -> dict[str, ScoreResult]:
        return score_example(example, outputs, code_eval=code_eval)
