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
    """Whole lines out of arbitrary pieces, in linear time: a partial line is kept as a list of pieces and only
    each new piece is searched for a newline. A partial line over `max_line` bytes raises."""

    def __init__(self, url: str, max_line: int) -> None:
        self.url = url
        self.max_line = max_line
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, piece: bytes) -> bytes:
        """The complete lines this piece finishes (b"" when none)."""
        cut = piece.rfind(b"\n") + 1
        if cut == 0:
            self._parts.append(piece)
            self._size += len(piece)
            if self._size > self.max_line:
                raise too_big(self.url, "a stream line", self.max_line)
            return b""
        lines = b"".join([*self._parts, piece[:cut]])
        rest = piece[cut:]
        self._parts, self._size = ([rest], len(rest)) if rest else ([], 0)
        if len(lines) > self.max_line and any(len(line) > self.max_line for line in lines.split(b"\n")):
            raise too_big(self.url, "a stream line", self.max_line)
        if self._size > self.max_line:
            raise too_big(self.url, "a stream line", self.max_line)
        return lines

    @property
    def pending(self) -> bytes:
        return b"".join(self._parts)


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
