"""Limits on what an upstream may send: response and line size caps, a linear line splitter, field type checks."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from app.core.errors import BadBackendResponse

# Fields of Ollama's answers that the router reads as counts (token accounting, metrics, residency).
COUNT_FIELDS = (
    "prompt_eval_count",
    "eval_count",
    "total_duration",
    "load_duration",
    "prompt_eval_duration",
    "eval_duration",
)


@dataclass(frozen=True)
class UpstreamLimits:
    max_response_bytes: int = 64 * 1024 * 1024
    max_line_bytes: int = 16 * 1024 * 1024


def too_big(url: str, what: str, limit: int) -> BadBackendResponse:
    return BadBackendResponse(f"{what} from {url} exceeds the {limit}-byte limit (SWARM_UPSTREAM_MAX_*_BYTES)")


class LineSplitter:
    """Whole lines (or, with sep=b"\n\n", whole SSE events) out of arbitrary pieces, in linear time: a partial
    line is kept as a list of pieces, and only each new piece (plus the end of the one before, where a separator
    may have started) is searched for a separator. A partial line over `max_line` bytes raises (and is dropped)."""

    def __init__(self, url: str, max_line: int, sep: bytes = b"\n", what: str = "a stream line") -> None:
        self.url = url
        self.max_line = max_line
        self.sep = sep
        self.what = what
        self._parts: list[bytes] = []
        self._size = 0

    def _too_big(self) -> BadBackendResponse:
        self._parts, self._size = [], 0
        return too_big(self.url, self.what, self.max_line)

    def feed(self, piece: bytes) -> bytes:
        """The complete lines this piece finishes, separators included (b"" when none)."""
        if not piece:
            return b""
        tail = self._parts[-1][1 - len(self.sep) :] if self._parts and len(self.sep) > 1 else b""
        found = (tail + piece if tail else piece).rfind(self.sep)
        if found < 0:
            self._parts.append(piece)
            self._size += len(piece)
            if self._size > self.max_line:
                raise self._too_big()
            return b""
        cut = found + len(self.sep) - len(tail)  # >= 1: a separator cannot lie wholly in the tail
        lines = b"".join([*self._parts, piece[:cut]])
        rest = piece[cut:]
        self._parts, self._size = ([rest], len(rest)) if rest else ([], 0)
        if len(lines) > self.max_line and any(len(line) > self.max_line for line in lines.split(self.sep)):
            raise self._too_big()
        if self._size > self.max_line:
            raise self._too_big()
        return lines

    @property
    def pending(self) -> bytes:
        return b"".join(self._parts)

    def take_pending(self) -> bytes:
        """The partial line so far, handed out once (the splitter is empty afterwards)."""
        rest = b"".join(self._parts)
        self._parts, self._size = [], 0
        return rest


def check_counts(data: dict[str, Any], url: str) -> None:
    """Count fields must be non-negative finite numbers (or absent / null): anything else is a bad upstream."""
    for name in COUNT_FIELDS:
        value = data.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
            raise BadBackendResponse(f"{url} sent a non-count {name}: {str(value)[:50]!r}")


def check_embeddings(data: dict[str, Any], url: str) -> dict[str, Any]:
    """An /api/embed answer must carry a list of lists of finite numbers."""
    vectors = data.get("embeddings")
    ok = isinstance(vectors, list) and all(
        isinstance(v, list)
        and all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in v)
        for v in vectors
    )
    if not ok:
        raise BadBackendResponse(f"{url} sent malformed embeddings: {str(vectors)[:50]!r}")
    return data
