"""Benchmark records: scored subtasks, examples (DAG jobs), score results, job records and the Benchmark protocol."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.domain.models import TASK_TYPES, Subtask
from app.execution.results import JobResult

ScorerName = Literal["json", "numeric", "keywords", "yesno", "code", "exact", "choice", "judge_only"]


class CodeSpec(BaseModel):
    """How to test a code answer: its own entry point and its own arguments, never a fixed (3, 4)."""

    model_config = ConfigDict(extra="forbid")

    entry_point: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    # (positional args, expected return value) pairs; values must be JSON-representable.
    tests: list[tuple[list[Any], Any]] = Field(default_factory=list)
    # HumanEval style: source defining `check(candidate)`, which asserts.
    check: str | None = None
    # MBPP style: assert statements that name the function directly, run one by one.
    asserts: list[str] = Field(default_factory=list)
    # Source run before the answer (MBPP test_setup_code).
    setup: str | None = None
    # HumanEval prompt: a completion that only gives the body is appended to it.
    prompt: str | None = None

    @model_validator(mode="after")
    def _has_tests(self) -> CodeSpec:
        if not (self.tests or self.check or self.asserts):
            raise ValueError("a CodeSpec needs tests, a check function or assert statements")
        return self


class BenchSubtask(Subtask):
    """A Subtask plus what a correct answer is and how to score it."""

    expected: Any = None
    scorer: ScorerName
    code_spec: CodeSpec | None = None

    @model_validator(mode="after")
    def _code_needs_spec(self) -> BenchSubtask:
        if self.scorer == "code" and self.code_spec is None:
            raise ValueError(f"subtask {self.id!r}: scorer 'code' needs a code_spec")
        return self

    def to_subtask(self) -> Subtask:
        """The plain routing view (drops expected answers so they never leak into prompts)."""
        return Subtask(
            id=self.id,
            task_type=self.task_type,
            description=self.description,
            estimated_tokens=self.estimated_tokens,
            difficulty=self.difficulty,
            deps=list(self.deps),
        )


def to_subtask(sub: BenchSubtask) -> Subtask:
    return sub.to_subtask()


class Example(BaseModel):
    """One job: subtasks forming a DAG (each dep names an earlier subtask)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    benchmark: str
    subtasks: list[BenchSubtask] = Field(min_length=1)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _valid_dag(self) -> Example:
        seen: set[str] = set()
        for sub in self.subtasks:
            if sub.id in seen:
                raise ValueError(f"example {self.id!r}: duplicate subtask id {sub.id!r}")
            # Deps must point backwards in list order, which also rules out cycles.
            bad = [d for d in sub.deps if d not in seen]
            if bad:
                raise ValueError(f"example {self.id!r}: subtask {sub.id!r} depends on unknown/later {bad}")
            seen.add(sub.id)
        return self

    @property
    def kind(self) -> str:
        """Arrival-mix key: the task type for single-subtask jobs, else the template name."""
        if len(self.subtasks) == 1:
            return self.subtasks[0].task_type
        return str(self.metadata.get("template") or ">".join(s.task_type for s in self.subtasks))

    def plain_subtasks(self) -> list[Subtask]:
        return [s.to_subtask() for s in self.subtasks]


class ScoreResult(BaseModel):
    """Score in [0, 1]; None only for judge_only subtasks, which have no automatic score."""

    score: float | None = Field(default=None, ge=0.0, le=1.0)
    method: str
    detail: str = ""


@runtime_checkable
class Benchmark(Protocol):
    name: str

    def load(self, limit: int, seed: int, **opts: Any) -> list[Example]: ...

    def score(self, example: Example, outputs: Mapping[str, str], *, code_eval: bool) -> dict[str, ScoreResult]: ...


@dataclass
class JobRecord:
    """One example run by one mode: the job's result, its subtask scores and the per-step exact optima."""

    mode: str
    block: int
    example: Example
    result: JobResult
    scores: dict[str, ScoreResult]
    optima: list[float | None]


TASK_ORDER: dict[str, int] = {t: i for i, t in enumerate(TASK_TYPES)}


def sample_indices(n_rows: int, limit: int, key: str, *, sample: bool = True) -> list[int]:
    """Dataset rows to use: all when limit <= 0, else a seeded sample (kept in dataset order) or the first `limit`."""
    idx = list(range(n_rows))
    if 0 < limit < n_rows:
        idx = sorted(random.Random(key).sample(idx, limit)) if sample else idx[:limit]
    return idx


def balanced_order(kinds: list[str], limit: int, rng: random.Random) -> list[str]:
    """`limit` slots cycling through `kinds` (balanced counts), shuffled by the benchmark's seeded rng."""
    order = [kinds[i % len(kinds)] for i in range(max(0, limit))]
    rng.shuffle(order)
    return order
