"""Scorers for model outputs: JSON, numeric, keywords, yes/no, exact match and sandboxed code execution."""

from __future__ import annotations

import ast
import json
import math
import re
import secrets
from collections.abc import Mapping
from typing import Any

from app.bench.choice import score_choice
from app.bench.sandbox import SandboxLimits, describe, run_python
from app.bench.types import BenchSubtask, CodeSpec, Example, ScoreResult

_FENCE = re.compile(r"```([A-Za-z0-9_+-]*)[ \t]*\n?(.*?)(?:```|\Z)", re.DOTALL)
_NUM = r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+"
_NUM_RE = re.compile(_NUM)
_MARKED = re.compile(rf"(?:final answer|answer)\s*(?:is|:|=)?\s*[:=]?\s*\**\s*\$?\s*({_NUM})", re.I)
_BOXED = re.compile(rf"\\boxed\{{\s*\$?({_NUM})")


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language tag, body) of each ``` block; an unclosed final fence counts (truncated replies)."""
    return [(m.group(1).lower(), m.group(2)) for m in _FENCE.finditer(text)]


def parse_json(text: str) -> Any:
    """Parse JSON from a reply: bare, fenced (```json keeps its tag out), or embedded in prose."""
    candidates = [text.strip(), *(body.strip() for _, body in fenced_blocks(text))]
    for cand in candidates:
        try:
            return json.loads(cand)
        except json.JSONDecodeError:
            pass
    decoder = json.JSONDecoder()
    for i, ch in enumerate(text):
        if ch in "{[":
            try:
                return decoder.raw_decode(text[i:])[0]
            except json.JSONDecodeError:
                continue
    raise ValueError("no JSON value found")


def _to_number(text: str) -> float:
    return float(text.replace(",", ""))


def _norm(value: Any) -> Any:
    """Comparable form: numbers (and numeric strings) to float, strings casefolded, keys lower-cased."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        s = " ".join(value.strip().split()).casefold()
        return _to_number(s) if re.fullmatch(_NUM, s) else s
    if isinstance(value, Mapping):
        return {str(k).strip().casefold(): _norm(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_norm(v) for v in value]
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def score_json(output: str, expected: Any) -> ScoreResult:
    """Dict expected: fraction of its keys matched (extra keys ignored); otherwise all-or-nothing."""
    try:
        got = _norm(parse_json(output))
    except ValueError:
        return ScoreResult(score=0.0, method="json", detail="no parsable JSON")
    exp = _norm(expected)
    if isinstance(exp, dict):
        if not isinstance(got, dict):
            return ScoreResult(score=0.0, method="json", detail=f"expected an object, got {type(got).__name__}")
        wrong = [k for k in exp if k not in got or not _same(got[k], exp[k])]
        detail = f"mismatched keys: {wrong}" if wrong else "all keys match"
        return ScoreResult(score=(len(exp) - len(wrong)) / max(1, len(exp)), method="json", detail=detail)
    ok = _same(got, exp)
    return ScoreResult(score=float(ok), method="json", detail="match" if ok else "mismatch")


def extract_number(text: str) -> float | None:
    """A marked answer ("final answer: 42", \\boxed{42}) wins; otherwise the last number in the text."""
    for pattern in (_BOXED, _MARKED):
        hits = pattern.findall(text)
        if hits:
            return _to_number(hits[-1])
    hits = _NUM_RE.findall(text)
    return _to_number(hits[-1]) if hits else None


def score_numeric(output: str, expected: Any, rel_tol: float = 1e-4) -> ScoreResult:
    got = extract_number(output)
    if got is None:
        return ScoreResult(score=0.0, method="numeric", detail="no number found")
    ok = math.isclose(got, float(expected), rel_tol=rel_tol, abs_tol=1e-6)
    return ScoreResult(score=float(ok), method="numeric", detail=f"got {got:g}, expected {float(expected):g}")


def score_keywords(output: str, keywords: list[str]) -> ScoreResult:
    """Fraction of keywords present, case-insensitive, as whole tokens ("12" does not match "120")."""
    if not keywords:
        return ScoreResult(score=0.0, method="keywords", detail="no keywords to check")
    text = output.casefold()
    missing = [k for k in keywords if not re.search(rf"(?<![\w]){re.escape(k.casefold())}(?![\w])", text)]
    score = (len(keywords) - len(missing)) / len(keywords)
    return ScoreResult(score=score, method="keywords", detail=f"missing: {missing}" if missing else "all present")


def extract_yes_no(text: str) -> str | None:
    """A marked answer first ("answer: no"), else the first standalone yes/no; echoes of "yes or no" are skipped."""
    cleaned = re.sub(r"\byes\s*(?:or|/)\s*no\b", " ", text, flags=re.I)
    marked = re.findall(r"answer\s*(?:is|:)\s*\**\s*(yes|no)\b", cleaned, flags=re.I)
    if marked:
        return str(marked[-1]).lower()
    first = re.search(r"\b(yes|no)\b", cleaned, flags=re.I)
    return first.group(1).lower() if first else None


def score_yes_no(output: str, expected: Any) -> ScoreResult:
    want = ("yes" if expected else "no") if isinstance(expected, bool) else str(expected).strip().lower()
    got = extract_yes_no(output)
    return ScoreResult(score=float(got == want), method="yesno", detail=f"got {got}, expected {want}")


def score_exact(output: str, expected: Any) -> ScoreResult:
    def clean(s: str) -> str:
        return " ".join(s.strip().rstrip(".").strip("`'\" ").rstrip(".").split()).casefold()

    ok = clean(output) == clean(str(expected))
    return ScoreResult(score=float(ok), method="exact", detail="match" if ok else "mismatch")


def _defines(code: str, name: str) -> bool:
    return re.search(rf"^def\s+{re.escape(name)}\s*\(", code, flags=re.M) is not None


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    return True


def extract_code(text: str, entry_point: str | None = None) -> str:
    """Code from a reply: the fenced block defining the entry point (else the longest), else the raw text."""
    blocks = [body for lang, body in fenced_blocks(text) if lang in ("", "python", "py", "python3")]
    if blocks:
        defining = [b for b in blocks if entry_point and _defines(b, entry_point)]
        return (defining or sorted(blocks, key=len, reverse=True))[:1][0]
    if _parses(text) or not entry_point:
        return text
    # Prose around unfenced code: start at the first code-looking line, drop trailing lines until it parses.
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if re.match(r"(def |import |from |class |@)", ln)), None)
    if start is None:
        # No top-level code line: an indented function body (HumanEval completion) stays untouched.
        return text
    body = lines[start:]
    for end in range(len(body), 0, -1):
        cand = "\n".join(body[:end])
        if _parses(cand) and _defines(cand, entry_point):
            return cand
    return text


def assemble_program(code: str, spec: CodeSpec) -> str:
    """HumanEval-style: a body is appended to the prompt; a full function is placed after it (and wins)."""
    if spec.prompt is None:
        return code
    if _defines(code, spec.entry_point):
        return spec.prompt + "\n\n" + code
    return spec.prompt + code


_HARNESS = r"""
import copy, json, math
_S = json.loads(__SPEC__)
def _canon(v):
    if isinstance(v, (list, tuple)):
        return [_canon(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _canon(x) for k, x in v.items()}
    return v
def _eq(a, b):
    if isinstance(a, float) or isinstance(b, float):
        try:
            return math.isclose(float(a), float(b), rel_tol=1e-6, abs_tol=1e-9)
        except (TypeError, ValueError):
            return False
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_eq(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_eq(a[k], b[k]) for k in a)
    return a == b
_ns = {"__name__": "candidate"}
exec(compile(_S["setup"], "setup.py", "exec"), _ns)
exec(compile(_S["code"], "solution.py", "exec"), _ns)
_passed, _total, _errors = 0, 0, []
def _run(fn, label):
    global _passed, _total
    _total += 1
    try:
        if fn() is not False:
            _passed += 1
        elif len(_errors) < 3:
            _errors.append(f"{label}: wrong result")
    except BaseException as exc:
        if len(_errors) < 3:
            _errors.append(f"{label}: {type(exc).__name__}: {str(exc)[:120]}")
for _i, (_args, _want) in enumerate(_S["tests"]):
    _run(lambda: _eq(_canon(_ns[_S["entry"]](*copy.deepcopy(_args))), _want), f"test {_i}")
if _S["check"]:
    _cns = dict(_ns)
    exec(compile(_S["check"], "check.py", "exec"), _cns)
    _run(lambda: _cns["check"](_ns[_S["entry"]]), "check")
for _i, _stmt in enumerate(_S["asserts"]):
    _run(lambda: exec(_stmt, _ns), f"assert {_i}")
print(_S["marker"] + json.dumps({"passed": _passed, "total": _total, "errors": _errors}))
"""


def score_code(output: str, spec: CodeSpec, *, code_eval: bool, limits: SandboxLimits | None = None) -> ScoreResult:
    """Run the task's own tests on its own entry point; without code_eval only a labelled heuristic."""
    code = extract_code(output, spec.entry_point)
    program = assemble_program(code, spec)
    if not code_eval:
        # Weak by design: 0.5 for parsable code that defines the entry point (or a body with a return after a
        # HumanEval prompt); never a pass. Reports should keep it apart from executed scores.
        gives = _defines(code, spec.entry_point) or (spec.prompt is not None and "return" in code)
        good = bool(code.strip()) and gives and _parses(program)
        return ScoreResult(score=0.5 if good else 0.0, method="heuristic", detail="code_eval off; not executed")
    marker = "@@SWARM_RESULT_" + secrets.token_hex(8) + "@@"
    payload = {
        "setup": spec.setup or "",
        "code": program,
        "entry": spec.entry_point,
        "tests": [[list(a), e] for a, e in spec.tests],
        "check": spec.check,
        "asserts": spec.asserts,
        "marker": marker,
    }
    result = run_python(_HARNESS.replace("__SPEC__", repr(json.dumps(payload))), limits)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith(marker)), None)
    if line is None:
        return ScoreResult(score=0.0, method="code_exec", detail=describe(result))
    report = json.loads(line[len(marker) :])
    score = report["passed"] / max(1, report["total"])
    detail = f"{report['passed']}/{report['total']} passed; {report['errors']}; {result.isolation}"
    return ScoreResult(score=score, method="code_exec", detail=detail)


def score_subtask(
    sub: BenchSubtask, output: str | None, *, code_eval: bool, limits: SandboxLimits | None = None
) -> ScoreResult:
    if sub.scorer == "judge_only":
        return ScoreResult(score=None, method="judge_only", detail="scored by the LLM judge only")
    if output is None or not output.strip():
        return ScoreResult(score=0.0, method=sub.scorer, detail="no output")
    if sub.scorer == "json":
        return score_json(output, sub.expected)
    if sub.scorer == "numeric":
        return score_numeric(output, sub.expected)
    if sub.scorer == "keywords":
        return score_keywords(output, list(sub.expected or []))
    if sub.scorer == "yesno":
        return score_yes_no(output, sub.expected)
    if sub.scorer == "exact":
        return score_exact(output, sub.expected)
    if sub.scorer == "choice":
        return score_choice(output, str(sub.expected))
    assert sub.code_spec is not None  # guaranteed by BenchSubtask's validator
    return score_code(output, sub.code_spec, code_eval=code_eval, limits=limits)


def score_example(
    example: Example, outputs: Mapping[str, str], *, code_eval: bool, limits: SandboxLimits | None = None
) -> dict[str, ScoreResult]:
    """Score every subtask of a job; a missing output scores 0 rather than raising."""
    return {s.id: score_subtask(s, outputs.get(s.id), code_eval=code_eval, limits=limits) for s in example.subtasks}
