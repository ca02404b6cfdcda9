"""code_math_mix: seeded single-subtask jobs of code, math, reasoning, extraction and summarize."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from app.bench.scoring import score_example
from app.bench.types import BenchSubtask, CodeSpec, Example, ScoreResult, balanced_order

NAMES = ["Amara", "Bruno", "Chen", "Dalia", "Emeka", "Freya", "Goran", "Hana", "Ivo", "Jun", "Kofi", "Lena"]
CITIES = ["Porto", "Tromso", "Nairobi", "Osaka", "Quito", "Leeds", "Gdansk", "Perth", "Lyon", "Dakar"]
ITEMS = ["notebooks", "cables", "lamps", "mugs", "batteries", "sensors", "pumps", "valves", "drills"]
JOBS = ["pharmacist", "welder", "architect", "translator", "baker", "geologist", "pilot", "nurse"]
SubtaskGen = Callable[[random.Random, str], BenchSubtask]


def _sub(sid: str, kind: str, text: str, scorer: str, expected: Any, tokens: int, **kw: Any) -> BenchSubtask:
    return BenchSubtask.model_validate(
        {
            "id": sid,
            "task_type": kind,
            "description": text,
            "scorer": scorer,
            "expected": expected,
            "estimated_tokens": tokens,
            **kw,
        }
    )


def math_shop(rng: random.Random, sid: str) -> BenchSubtask:
    name, item = rng.choice(NAMES), rng.choice(ITEMS)
    a, p, b, q = rng.randint(2, 12), rng.randint(3, 40), rng.randint(2, 9), rng.randint(1, 15)
    cost = a * p + b * q
    bill = (cost // 50 + 1) * 50
    text = (
        f"{name} buys {a} {item} at ${p} each and {b} pens at ${q} each, paying with ${bill} in cash. "
        "How many dollars of change does "
        f"{name} get back? Give the final answer as a number."
    )
    return _sub(sid, "math", text, "numeric", bill - cost, 150, difficulty=0.3)


def math_tank(rng: random.Random, sid: str) -> BenchSubtask:
    fill, drain = rng.randint(6, 20), rng.randint(1, 5)
    minutes = rng.randint(5, 40)
    volume = (fill - drain) * minutes
    text = (
        f"An empty tank holds {volume} litres. A pipe fills it at {fill} litres per minute while a leak drains "
        f"{drain} litres per minute. After how many minutes is the tank full? Give the final answer as a number."
    )
    return _sub(sid, "math", text, "numeric", minutes, 150, difficulty=0.4)


def math_percent(rng: random.Random, sid: str) -> BenchSubtask:
    price = rng.randrange(40, 400, 20)
    up, down = rng.choice([10, 20, 25, 50]), rng.choice([10, 20, 25, 40])
    final = round(price * (1 + up / 100) * (1 - down / 100), 2)
    text = (
        f"A bicycle costs ${price}. Its price rises by {up}% and the new price is then cut by {down}%. "
        "What is the final price in dollars? Give the final answer as a number."
    )
    return _sub(sid, "math", text, "numeric", final, 150, difficulty=0.5)


def reason_order(rng: random.Random, sid: str) -> BenchSubtask:
    people = rng.sample(NAMES, rng.randint(3, 5))
    facts = " ".join(f"{people[i]} is older than {people[i + 1]}." for i in range(len(people) - 1))
    i, j = rng.sample(range(len(people)), 2)
    text = f"{facts} Is {people[i]} older than {people[j]}? Answer yes or no, then give one sentence of justification."
    return _sub(sid, "reasoning", text, "yesno", "yes" if i < j else "no", 120, difficulty=0.4)


def reason_overlap(rng: random.Random, sid: str) -> BenchSubtask:
    s1, d1 = rng.randint(8 * 60, 15 * 60), rng.choice([30, 45, 60, 90])
    s2, d2 = s1 + rng.randint(-90, 120), rng.choice([15, 30, 60])
    overlap = s1 < s2 + d2 and s2 < s1 + d1
    text = (
        f"Meeting A starts at {s1 // 60:02d}:{s1 % 60:02d} and lasts {d1} minutes. Meeting B starts at "
        f"{s2 // 60:02d}:{s2 % 60:02d} and lasts {d2} minutes. Do the two meetings overlap in time "
        "(touching end-to-start does not count)? Answer yes or no."
    )
    return _sub(sid, "reasoning", text, "yesno", "yes" if overlap else "no", 120, difficulty=0.45)


def extract_order(rng: random.Random, sid: str) -> BenchSubtask:
    oid, name, item = rng.randint(1000, 9999), rng.choice(NAMES), rng.choice(ITEMS)
    qty, price = rng.randint(2, 60), rng.randint(2, 90)
    text = (
        f"Read this note: 'Order {oid} came in from {name} for {qty} {item}, billed at {price} dollars a unit.' "
        "Return only a JSON object with keys order_id (integer), customer (string), item (string), "
        "quantity (integer) and unit_price (number)."
    )
    want = {"order_id": oid, "customer": name, "item": item, "quantity": qty, "unit_price": price}
    return _sub(sid, "extraction", text, "json", want, 120, difficulty=0.3)


def extract_person(rng: random.Random, sid: str) -> BenchSubtask:
    name, city, job, age = rng.choice(NAMES), rng.choice(CITIES), rng.choice(JOBS), rng.randint(21, 70)
    text = (
        f"Profile text: '{name} has worked as a {job} for years, turned {age} last spring and now lives in "
        f"{city}.' Extract a JSON object with keys name, age (integer), city and occupation. Output JSON only."
    )
    want = {"name": name, "age": age, "city": city, "occupation": job}
    return _sub(sid, "extraction", text, "json", want, 100, difficulty=0.25)


def summarize_incident(rng: random.Random, sid: str) -> BenchSubtask:
    city, item = rng.choice(CITIES), rng.choice(ITEMS)
    hours, lost = rng.randint(2, 30), rng.randint(100, 900)
    lead = rng.choice(NAMES)
    text = (
        f"Summarize in at most two sentences: 'Late on Tuesday the {city} depot lost power, stopping the "
        f"line that packs {item}. Technicians led by {lead} restored it after {hours} hours, but {lost} units "
        "had to be scrapped. A backup generator is now being installed so that a repeat outage does not halt "
        "packing again.' Keep the place, the product, the number of scrapped units and who led the repair."
    )
    return _sub(sid, "summarize", text, "keywords", [city, item, str(lost), lead], 150, difficulty=0.3)


def code_linear(rng: random.Random, sid: str) -> BenchSubtask:
    k1, k2, k3 = rng.randint(2, 9), rng.randint(-7, 7) or 1, rng.randint(-20, 20)
    fn = rng.choice(["blend", "mix_score", "weigh", "combine"])
    cases = [[rng.randint(-30, 30), rng.randint(-30, 30)] for _ in range(5)]
    tests = [(c, k1 * c[0] + k2 * c[1] + k3) for c in cases]
    text = f"Write a Python function `{fn}(a, b)` that returns {k1}*a + ({k2})*b + ({k3}) for integers a and b."
    return _sub(sid, "code", text, "code", None, 200, difficulty=0.2, code_spec=CodeSpec(entry_point=fn, tests=tests))


def code_filter(rng: random.Random, sid: str) -> BenchSubtask:
    t = rng.randint(-5, 20)
    fn = rng.choice(["keep_large", "above_cut", "select_high"])
    lists = [[rng.randint(-20, 40) for _ in range(rng.randint(0, 8))] for _ in range(5)]
    tests = [([xs], sorted((x for x in xs if x > t), reverse=True)) for xs in lists]
    text = (
        f"Write a Python function `{fn}(xs)` that takes a list of integers and returns a new list with the "
        f"elements strictly greater than {t}, sorted from largest to smallest (duplicates kept)."
    )
    return _sub(sid, "code", text, "code", None, 220, difficulty=0.3, code_spec=CodeSpec(entry_point=fn, tests=tests))


def code_vowels(rng: random.Random, sid: str) -> BenchSubtask:
    letters = "".join(sorted(rng.sample("abcdefghijklmnopqrstuvwxyz", 4)))
    fn = rng.choice(["count_marked", "tally_letters", "letter_hits"])
    words = ["Banana split", "Quick BROWN fox", "", "zebra crossing", "Hello, World!", "mississippi"]
    tests = [([w], sum(ch in letters for ch in w.lower())) for w in words]
    text = (
        f"Write a Python function `{fn}(s)` that returns how many characters of the string s are one of the "
        f"letters {', '.join(letters)} (case-insensitive, each occurrence counts)."
    )
    return _sub(sid, "code", text, "code", None, 200, difficulty=0.3, code_spec=CodeSpec(entry_point=fn, tests=tests))


GENERATORS: dict[str, list[SubtaskGen]] = {
    "code": [code_linear, code_filter, code_vowels],
    "math": [math_shop, math_tank, math_percent],
    "reasoning": [reason_order, reason_overlap],
    "extraction": [extract_order, extract_person],
    "summarize": [summarize_incident],
}


def distinct(limit: int, make: Callable[[int], Example], max_tries: int = 50) -> list[Example]:
    """Fill each slot with a draw whose descriptions are new (seeded draws, so still deterministic)."""
    out: list[Example] = []
    seen: set[str] = set()
    for slot in range(max(0, limit)):
        for _ in range(max_tries):
            ex = make(slot)
            key = "\n".join(s.description for s in ex.subtasks)
            if key not in seen:
                seen.add(key)
                out.append(ex)
                break
    return out


class CodeMathMix:
    """Balanced task types in a seeded random arrival order (the registry's mix reorders them)."""

    name = "code_math_mix"

    def load(self, limit: int, seed: int, **opts: Any) -> list[Example]:
        rng = random.Random(f"{self.name}:{seed}")
        plan = balanced_order(list(GENERATORS), limit, rng)

        def make(slot: int) -> Example:
            gen = rng.choice(GENERATORS[plan[slot]])
            return Example(
                id=f"cmm-{seed}-{slot:03d}",
                benchmark=self.name,
                subtasks=[gen(rng, "answer")],
                metadata={"generator": gen.__name__},
            )

        return distinct(limit, make)

    def score(self, example: Example, outputs: Mapping[str, str], *, code_eval: bool) -> dict[str, ScoreResult]:
        return score_example(example, outputs, code_eval=code_eval)
