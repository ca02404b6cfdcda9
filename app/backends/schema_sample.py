"""Deterministic sample of a JSON value that satisfies a (practical subset of) JSON Schema."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

_WORDS = ("alpha", "beta", "gamma", "delta", "sigma", "omega", "kappa", "lambda", "theta", "zeta")


class SchemaSampler:
    """Produces a value valid for object/array/string/number/integer/boolean/null, enum, const,
    required, min/max bounds, anyOf/oneOf/allOf (first branch) and local $ref. `hints` maps a
    property name to allowed values, used when the schema does not constrain it (e.g. "model" →
    the agent names, so a dry-run planner answer names real models)."""

    def __init__(self, rng: random.Random, hints: dict[str, Sequence[Any]] | None = None) -> None:
        self.rng = rng
        self.hints = hints or {}

    def sample(self, schema: dict[str, Any]) -> Any:
        return self._value(schema, schema, None, 0)

    def _value(self, schema: Any, root: dict[str, Any], prop: str | None, depth: int) -> Any:
        if not isinstance(schema, dict) or depth > 12:
            return None
        if "$ref" in schema:
            return self._value(_resolve(root, str(schema["$ref"])), root, prop, depth + 1)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self.rng.choice(schema["enum"])
        for key in ("anyOf", "oneOf", "allOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
                return self._value((non_null or options)[0], root, prop, depth + 1)
        kind = _type_of(schema)
        if kind == "object":
            return self._object(schema, root, depth)
        if kind == "array":
            return self._array(schema, root, prop, depth)
        if kind in ("integer", "number"):
            return self._number(schema, kind == "integer")
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return self._string(schema, prop)

    def _object(self, schema: dict[str, Any], root: dict[str, Any], depth: int) -> dict[str, Any]:
        props = schema.get("properties") or {}
        return {name: self._value(sub, root, name, depth + 1) for name, sub in props.items()}

    def _array(self, schema: dict[str, Any], root: dict[str, Any], prop: str | None, depth: int) -> list[Any]:
        lo = int(schema.get("minItems", 1))
        hi = int(schema.get("maxItems", max(lo, 3)))
        n = self.rng.randint(lo, max(lo, hi))
        items = schema.get("items", {"type": "string"})
        return [self._value(items, root, prop, depth + 1) for _ in range(n)]

    def _number(self, schema: dict[str, Any], integer: bool) -> int | float:
        lo = float(schema.get("minimum", schema.get("exclusiveMinimum", 0)))
        hi = float(schema.get("maximum", schema.get("exclusiveMaximum", lo + 100)))
        if integer:
            low, high = int(lo) + ("exclusiveMinimum" in schema), int(hi) - ("exclusiveMaximum" in schema)
            return self.rng.randint(low, max(low, high))
        value = round(self.rng.uniform(lo, hi), 3)
        return min(max(value, lo), hi)

    def _string(self, schema: dict[str, Any], prop: str | None) -> str:
        allowed = self.hints.get(prop or "")
        if allowed:
            return str(self.rng.choice(list(allowed)))
        text = " ".join(self.rng.choice(_WORDS) for _ in range(self.rng.randint(1, 4)))
        lo, hi = int(schema.get("minLength", 0)), schema.get("maxLength")
        while len(text) < lo:
            text += " " + self.rng.choice(_WORDS)
        return text[: int(hi)] if hi is not None else text


def _type_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if isinstance(kind, str):
        return kind
    if "properties" in schema:
        return "object"
    if "items" in schema:
        return "array"
    return "string"


def _resolve(root: dict[str, Any], ref: str) -> Any:
    node: Any = root
    for part in ref.lstrip("#/").split("/"):
        if not part:
            continue
        node = node.get(part) if isinstance(node, dict) else None
    return node
