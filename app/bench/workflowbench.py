"""workflowbench: seeded multi-subtask DAG jobs (chains, forks, diamonds) with per-subtask expected answers."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

from app.bench.code_math_mix import CITIES, ITEMS, NAMES, distinct
from app.bench.scoring import score_example
from app.bench.types import BenchSubtask, CodeSpec, Example, ScoreResult, balanced_order

Template = Callable[[random.Random], list[BenchSubtask]]
GOODS = {"crates": 12, "drums": 30, "rolls": 7, "panels": 18, "coils": 25, "sacks": 40}


def sub(sid: str, kind: str, text: str, scorer: str, expected: Any, deps: list[str], **kw: Any) -> BenchSubtask:
    tokens = {"code": 300, "summarize": 160, "extraction": 120}.get(kind, 150)
    return BenchSubtask.model_validate(
        {
            "id": sid,
            "task_type": kind,
            "description": text,
            "scorer": scorer,
            "expected": expected,
            "deps": deps,
            "estimated_tokens": tokens,
            **kw,
        }
    )


def due(q: int, p: int, d: int) -> float:
    return round(q * p * (100 - d) / 100, 2)


def order_chain(rng: random.Random) -> list[BenchSubtask]:
    """extraction → math → code."""
    oid, who, item = rng.randint(100, 999), rng.choice(NAMES), rng.choice(ITEMS)
    q, p, d = rng.randint(3, 80), rng.randint(2, 120), rng.choice([5, 10, 15, 20, 25, 30])
    fn = rng.choice(["amount_due", "order_total", "net_price"])
    extract = sub(
        "extract",
        "extraction",
        f"Purchase note: 'PO-{oid}: {who} orders {q} {item} at {p} dollars apiece; a {d} percent discount applies "
        "to the whole order.' Return only JSON with keys po (integer), buyer, quantity (integer), unit_price "
        "(number) and discount_pct (number).",
        "json",
        {"po": oid, "buyer": who, "quantity": q, "unit_price": p, "discount_pct": d},
        [],
    )
    compute = sub(
        "compute",
        "math",
        f"An order has {q} units at ${p} each, and a {d}% discount is taken off the order total. What amount "
        "in dollars is due? Give the final answer as a number.",
        "numeric",
        due(q, p, d),
        ["extract"],
    )
    cases = [[q, p, d]] + [[rng.randint(1, 50), rng.randint(1, 99), rng.choice([0, 10, 35])] for _ in range(4)]
    implement = sub(
        "implement",
        "code",
        f"Write a Python function `{fn}(quantity, unit_price, discount_pct)` returning quantity*unit_price "
        f"reduced by discount_pct percent, rounded to 2 decimals. For example {fn}({q}, {p}, {d}) == "
        f"{due(q, p, d)}.",
        "code",
        None,
        ["compute"],
        code_spec=CodeSpec(entry_point=fn, tests=[(c, due(c[0], c[1], c[2])) for c in cases]),
    )
    return [extract, compute, implement]


def term(p: int, q: int, k: int, n: int) -> int:
    a, b = p, q
    for _ in range(n):
        a, b = b, b + k * a
    return a


def sequence_fork(rng: random.Random) -> list[BenchSubtask]:
    """code → (math ‖ summarize)."""
    p, q, k, m = rng.randint(0, 4), rng.randint(1, 6), rng.randint(1, 3), rng.randint(6, 10)
    fn = rng.choice(["seq_term", "nth_value", "grow"])
    rule = f"a(0) = {p}, a(1) = {q} and a(n) = a(n-1) + {k}*a(n-2) for n >= 2"
    ns = sorted({0, 1, 2, 5, m, rng.randint(3, 12)})
    implement = sub(
        "implement",
        "code",
        f"Write a Python function `{fn}(n)` returning a(n) of the sequence {rule}.",
        "code",
        None,
        [],
        code_spec=CodeSpec(entry_point=fn, tests=[([n], term(p, q, k, n)) for n in ns]),
    )
    value = sub(
        "value",
        "math",
        f"A sequence is defined by {rule}. What is a({m})? Give the final answer as a number.",
        "numeric",
        term(p, q, k, m),
        ["implement"],
    )
    explain = sub(
        "explain",
        "summarize",
        f"In two or three plain sentences for a non-programmer, explain what "
        f"the function `{fn}` computes: the sequence {rule}. Mention the function name and both starting "
        "values.",
        "keywords",
        [fn, str(p), str(q)],
        ["implement"],
    )
    return [implement, value, explain]


def shipment_check(rng: random.Random) -> list[BenchSubtask]:
    """extraction → reasoning → summarize."""
    sid, origin = f"SH{rng.randint(100, 999)}", rng.choice(CITIES)
    w, lim, bridge = rng.randrange(800, 3000, 50), rng.randrange(1000, 3200, 100), rng.randrange(1000, 3200, 100)
    ok = w <= lim and w <= bridge
    extract = sub(
        "extract",
        "extraction",
        f"Dispatch log: 'Shipment {sid} leaves {origin} weighing {w} kg. The "
        f"assigned truck is rated for {lim} kg; the bridge on its route is posted at {bridge} kg.' Return only "
        "JSON with keys shipment_id, origin, weight_kg, truck_limit_kg and bridge_limit_kg.",
        "json",
        {"shipment_id": sid, "origin": origin, "weight_kg": w, "truck_limit_kg": lim, "bridge_limit_kg": bridge},
        [],
    )
    decide = sub(
        "decide",
        "reasoning",
        f"A load of {w} kg goes on a truck rated for {lim} kg and must cross a "
        f"bridge posted at {bridge} kg. Can it travel as planned with both limits respected? Answer yes or no.",
        "yesno",
        "yes" if ok else "no",
        ["extract"],
    )
    note = sub(
        "note",
        "summarize",
        f"Write a two-sentence status note for shipment {sid} from {origin} ({w} kg) "
        f"stating whether it is cleared to depart; it is cleared only if {w} kg fits both the truck rating "
        f"({lim} kg) and the bridge limit ({bridge} kg).",
        "keywords",
        [sid, origin, str(w)],
        ["extract", "decide"],
    )
    return [extract, decide, note]


def payroll(rng: random.Random) -> list[BenchSubtask]:
    """extraction → math → reasoning."""
    who, rate = rng.choice(NAMES), rng.randint(14, 48)
    hours = [rng.randint(3, 11) for _ in range(3)]
    pay = sum(hours) * rate
    bar = pay + rng.choice([-1, 1]) * rng.randint(1, 6) * rate
    days = ("monday", "tuesday", "wednesday")
    extract = sub(
        "extract",
        "extraction",
        f"Timesheet: '{who}: Monday {hours[0]} h, Tuesday {hours[1]} h, "
        f"Wednesday {hours[2]} h, paid {rate} dollars per hour.' Return only JSON with keys employee, monday, "
        "tuesday, wednesday (hours as integers) and hourly_rate.",
        "json",
        {"employee": who, **dict(zip(days, hours, strict=True)), "hourly_rate": rate},
        [],
    )
    total = sub(
        "total",
        "math",
        f"Someone works {hours[0]}, {hours[1]} and {hours[2]} hours on three days at "
        f"${rate} per hour. What is the total pay in dollars? Give the final answer as a number.",
        "numeric",
        pay,
        ["extract"],
    )
    bonus = sub(
        "bonus",
        "reasoning",
        f"{who} worked {hours[0]}, {hours[1]} and {hours[2]} hours at ${rate} "
        f"per hour. A bonus applies only if total pay is above ${bar}. Does the bonus apply? Answer yes or no.",
        "yesno",
        "yes" if pay > bar else "no",
        ["total"],
    )
    return [extract, total, bonus]


def stock_diamond(rng: random.Random) -> list[BenchSubtask]:
    """extraction → (math ‖ code) → summarize."""
    site, goods = rng.choice(CITIES), rng.sample(sorted(GOODS), 3)
    units = [rng.randint(2, 60) for _ in goods]
    floor = rng.randint(10, 40)
    stock = dict(zip(goods, units, strict=True))
    low = sorted(g for g, u in stock.items() if u < floor)
    listing = ", ".join(f"{u} {g}" for g, u in stock.items())
    fn = rng.choice(["below_floor", "needs_restock", "short_items"])
    extract = sub(
        "extract",
        "extraction",
        f"Inventory line: 'The {site} warehouse holds {listing}.' Return only "
        "a JSON object mapping each item name to its unit count.",
        "json",
        stock,
        [],
    )
    weights = ", ".join(f"one of the {g} weighs {GOODS[g]} kg" for g in goods)
    weight = sum(GOODS[g] * u for g, u in stock.items())
    mass = sub(
        "mass",
        "math",
        f"A warehouse holds {listing}; {weights}. What is the total weight in kg? Give the final answer as a number.",
        "numeric",
        weight,
        ["extract"],
    )
    samples = [stock, {"a": 5, "b": 50}, {}, {"x": floor, "y": floor - 1, "z": 0}]
    select = sub(
        "select",
        "code",
        f"Write a Python function `{fn}(stock, floor)` that takes a dict of item "
        "name to unit count and returns the alphabetically sorted list of names whose count is strictly "
        "below floor.",
        "code",
        None,
        ["extract"],
        code_spec=CodeSpec(
            entry_point=fn, tests=[([s, floor], sorted(g for g, u in s.items() if u < floor)) for s in samples]
        ),
    )
    keys = [site, *low] if low else [site, "no"]
    note = sub(
        "note",
        "summarize",
        f"Write a short restock note for the {site} warehouse, which holds {listing}. "
        f"Name every item with fewer than {floor} units (or say no item needs restocking) and give the total "
        "weight.",
        "keywords",
        keys,
        ["mass", "select"],
    )
    return [extract, mass, select, note]


TEMPLATES: dict[str, Template] = {
    "order_chain": order_chain,
    "sequence_fork": sequence_fork,
    "shipment_check": shipment_check,
    "payroll": payroll,
    "stock_diamond": stock_diamond,
}


class WorkflowBench:
    """Templates cycle in a seeded order; parameters are drawn until every job's text is distinct."""

    name = "workflowbench"

    def load(self, limit: int, seed: int, **opts: Any) -> list[Example]:
        rng = random.Random(f"{self.name}:{seed}")
        order = balanced_order(list(TEMPLATES), limit, rng)

        def make(slot: int) -> Example:
            tpl = order[slot]
            return Example(
                id=f"wf-{seed}-{slot:03d}",
                benchmark=self.name,
                subtasks=TEMPLATES[tpl](rng),
                metadata={"template": tpl},
            )

        return distinct(limit, make)

    def score(self, example: Example, outputs: Mapping[str, str], *, code_eval: bool) -> dict[str, ScoreResult]:
        return score_example(example, outputs, code_eval=code_eval)
