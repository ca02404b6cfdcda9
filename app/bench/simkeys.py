"""Answer keys for the sim backend: each subtask's correct answer, so the sim is right with its true quality."""

from __future__ import annotations

import json
from typing import Any

from app.backends.sim import SimBackend
from app.bench.types import BenchSubtask, CodeSpec, Example


def lookup_program(spec: CodeSpec) -> str:
    """A correct-on-its-tests implementation of a `tests`-style CodeSpec: a table from arguments to results."""
    table = {json.dumps(list(args)): expected for args, expected in spec.tests}
    return (
        "import json\n"
        f"_TABLE = json.loads({json.dumps(json.dumps(table))})\n\n\n"
        f"def {spec.entry_point}(*args):\n"
        "    return _TABLE[json.dumps(list(args))]\n"
    )


def correct_code(sub: BenchSubtask, example: Example) -> str | None:
    """A reference answer for a code subtask: the dataset's own solution, else a table over its tests."""
    spec = sub.code_spec
    if spec is None:
        return None
    meta = example.metadata
    if spec.check and meta.get("canonical_solution"):
        return str(spec.prompt or "") + str(meta["canonical_solution"])
    if spec.asserts and meta.get("reference_code"):
        return str(meta["reference_code"])
    if spec.tests:
        return lookup_program(spec)
    return None


def answer_for(sub: BenchSubtask, example: Example) -> Any:
    if sub.scorer == "code":
        code = correct_code(sub, example)
        return None if code is None else f"```python\n{code}\n```"
    if sub.scorer == "keywords" and isinstance(sub.expected, list):
        return "; ".join(str(k) for k in sub.expected)
    return sub.expected


def register_examples(sim: SimBackend, examples: list[Example]) -> int:
    """Register every subtask's correct answer under its description; returns how many were registered."""
    n = 0
    for ex in examples:
        for sub in ex.subtasks:
            answer = answer_for(sub, ex)
            if answer is None or sub.scorer == "judge_only":
                continue
            sim.register_expected(sub.description, answer, sub.task_type)
            n += 1
    return n
