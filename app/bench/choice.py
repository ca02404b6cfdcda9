"""Multiple-choice answers: the final answer letter a reply commits to (never just any standalone "A")."""

from __future__ import annotations

import re

from app.bench.types import ScoreResult

LETTERS = "ABCDEFGHIJ"
# "Answer: C", "the correct answer is (b)", "Final answer - **D**", "option B": an explicit statement of the choice.
# A lowercase letter counts only inside brackets or right before punctuation/end, so "the answer is a function" does
# not read as "A".
_STATED = re.compile(
    r"(?i:(?:final\s+)?answer|correct\s+(?:option|choice)|option|choice)\s*(?:is|:|=|-)?\s*(?:option\s+)?"
    r"[*_]*(?:\(([A-Ja-j])\)|([A-J])(?![A-Za-z0-9])|([a-j])(?=[*_]*(?:[.)!;]|$)))",
    re.MULTILINE,
)
# A line that is only the letter: "C", "C.", "(C)", "**C**", "C) 42".
_LINE = re.compile(r"^\s*[*_]*\(?([A-J])\)?[*_]*\s*(?:[.):]\s*.*)?$")


def final_letter(text: str, n_choices: int = 4) -> str | None:
    """The letter the reply commits to: its last explicit answer statement; else the last line that is just a
    letter (or starts "C)" / "C."); else None. Letters beyond the choices are ignored."""
    allowed = LETTERS[:n_choices]
    stated = [next(g for g in m.groups() if g).upper() for m in _STATED.finditer(text)]
    stated = [s for s in stated if s in allowed]
    if stated:
        return stated[-1]
    for line in reversed([ln for ln in text.splitlines() if ln.strip()]):
        m = _LINE.match(line)
        if m and m.group(1) in allowed:
            return m.group(1)
    return None


def score_choice(output: str, expected: str, n_choices: int = 4) -> ScoreResult:
    got = final_letter(output, n_choices)
    want = str(expected).strip().upper()
    if got is None:
        return ScoreResult(score=0.0, method="choice", detail="no final answer letter found")
    return ScoreResult(score=1.0 if got == want else 0.0, method="choice", detail=f"answered {got}, expected {want}")
