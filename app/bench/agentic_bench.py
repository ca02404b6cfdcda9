"""agentic_bench: longer seeded chains plan → code → verify-by-math → check → report."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from app.bench.code_math_mix import distinct
from app.bench.scoring import score_example
from app.bench.types import BenchSubtask, CodeSpec, Example, ScoreResult
from app.bench.workflowbench import sub


@dataclass(frozen=True)
class IntFunction:
    """An integer function the chain is about: its spec text, plan keywords and a reference implementation."""

    family: str
    spec: str
    plan_words: list[str]
    ref: Callable[[int], int]


def digit_power(rng: random.Random) -> IntFunction:
    k = rng.randint(2, 4)
    return IntFunction(
        "digit_power",
        f"the sum of the decimal digits of n, each raised to the power {k}",
        ["digit", "power", "sum"],
        lambda n: sum(int(d) ** k for d in str(abs(n))),
    )


def multiples_sum(rng: random.Random) -> IntFunction:
    a, b = rng.sample([3, 4, 5, 6, 7, 9, 11], 2)
    return IntFunction(
        "multiples_sum",
        f"the sum of all integers from 1 to n inclusive that are divisible by {a} or by {b} (0 when n < 1)",
        ["divisible", "sum", "loop"],
        lambda n: sum(i for i in range(1, n + 1) if i % a == 0 or i % b == 0),
    )


def shrink_steps(rng: random.Random) -> IntFunction:
    d, s, c = rng.choice([2, 3]), rng.randint(1, 3), rng.randint(2, 6)

    def ref(n: int) -> int:
        steps = 0
        while n >= c:
            n = n // d if n % d == 0 else n - s
            steps += 1
        return steps

    return IntFunction(
        "shrink_steps",
        f"how many steps it takes to bring n below {c}, where one step divides "
        f"n by {d} when n is divisible by {d} and otherwise subtracts {s}",
        ["step", "divisible", "loop"],
        ref,
    )


FAMILIES = [digit_power, multiples_sum, shrink_steps]


def build_chain(rng: random.Random) -> tuple[list[BenchSubtask], str]:
    f = rng.choice(FAMILIES)(rng)
    fn = rng.choice(["solve", "compute_value", "evaluate", "run_rule"]) + f"_{rng.randint(1, 99)}"
    x = rng.randint(20, 400)
    value = f.ref(x)
    thr = value + rng.choice([-1, 1]) * rng.randint(1, max(2, abs(value) // 4 + 1))
    probes = sorted({0, 1, 7, x, *(rng.randint(2, 500) for _ in range(4))})
    plan = sub(
        "plan",
        "reasoning",
        f"Plan, as short numbered steps and without code, how to implement a Python "
        f"function `{fn}(n)` that returns {f.spec}. Mention the function name.",
        "keywords",
        [fn, *f.plan_words[:2]],
        [],
    )
    code = sub(
        "code",
        "code",
        f"Write a Python function `{fn}(n)` that returns {f.spec}.",
        "code",
        None,
        ["plan"],
        code_spec=CodeSpec(entry_point=fn, tests=[([n], f.ref(n)) for n in probes]),
    )
    verify = sub(
        "verify",
        "math",
        f"Work out by hand the value of {f.spec}, for n = {x}. Show the key steps, "
        "then give the final answer as a number.",
        "numeric",
        value,
        ["code"],
    )
    check = sub(
        "check",
        "reasoning",
        f"Let v be {f.spec}, for n = {x}. Is v greater than {thr}? Answer yes or no.",
        "yesno",
        "yes" if value > thr else "no",
        ["verify"],
    )
    report = sub(
        "report",
        "summarize",
        f"Write a three-sentence report on the function `{fn}`: what it computes "
        f"({f.spec}), the value it returns for n = {x}, and whether that value exceeds {thr}.",
        "keywords",
        [fn, str(value)],
        ["code", "verify", "check"],
    )
    return [plan, code, verify, check, report], f.family


class AgenticBench:
    """Five-node chains over seeded integer functions; the verify and check nodes are computable by hand."""

    name = "agentic_bench"

    def load(self, limit: int, seed: int, **opts: Any) -> list[Example]:
        rng = random.Random(f"{self.name}:{seed}")

        def make(slot: int) -> Example:
            subs, family = build_chain(rng)
            return Example(
                id=f"ag-{seed}-{slot:03d}",
                benchmark=self.name,
                subtasks=subs,
                metadata={"template": "plan_code_verify", "family": family},
            )

        return distinct(limit, make)

    def score(self, example: Example, outputs: Mapping[str, str], *, code_eval: bool) -> dict[str, ScoreResult]:
        return score_example(example, outputs, code_eval=code_eval)
