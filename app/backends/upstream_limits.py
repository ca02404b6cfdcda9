"""Limits on what an upstream may send: response and line size caps, a linear line splitter, field type checks."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from app.core.errors import BadBackendResponse

# Fields of Ollama's answers that the router reads as counts (token accounting, metrics, residency), each with
# the largest value a sane upstream sends: tokens of one call far beyond any context window, durations (ns) within
# a 64-bit integer. Anything larger is a broken upstream (it would overflow a database column or a budget).
MAX_TOKEN_COUNT = 2**31 - 1
MAX_DURATION_NS = 2**63 - 1
TOKEN_FIELDS = ("prompt_eval_count", "eval_count")
COUNT_FIELDS = (
    *TOKEN_FIELDS,
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


# An SSE event ends at a blank line; a line ends with CRLF, LF or CR (the SSE spec), so a blank line is one of these.
SSE_SEPARATORS = (b"\n\n", b"\r\r", b"\n\r\n")


class LineSplitter:
    """Whole lines (or, with seps=SSE_SEPARATORS, whole SSE events) out of arbitrary pieces, in linear time: a
    partial line is kept as a list of pieces, and only each new piece (plus the end of the one before, where a
    separator may have started) is searched for a separator. A partial line over `max_line` bytes raises (and is
    dropped). `sep` is the one separator of a line-based stream; `seps` several (any of them ends a line)."""

    def __init__(
        self, url: str, max_line: int, sep: bytes = b"\n", what: str = "a stream line", seps: tuple[bytes, ...] = ()
    ) -> None:
        self.url = url
        self.max_line = max_line
        self.seps = seps or (sep,)
        self._longest = max(len(s) for s in self.seps)
        self._pattern = re.compile(b"|".join(re.escape(s) for s in self.seps))
        self.what = what
        self._parts: list[bytes] = []
        self._size = 0

    def _too_big(self) -> BadBackendResponse:
        self._parts, self._size = [], 0
        return too_big(self.url, self.what, self.max_line)

    def _last_end(self, data: bytes) -> int:
        """Where the last separator in `data` ends (-1 when there is none)."""
        return max((data.rfind(sep) + len(sep) if sep in data else -1) for sep in self.seps)

    def _tail(self) -> bytes:
        """The last bytes kept (one less than the longest separator): where a separator may have started."""
        need, tail = self._longest - 1, b""
        for part in reversed(self._parts):
            if len(tail) >= need:
                break
            tail = part[len(tail) - need :] + tail
        return tail

    def feed(self, piece: bytes) -> bytes:
        """The complete lines this piece finishes, separators included (b"" when none)."""
        if not piece:
            return b""
        tail = self._tail()
        end = self._last_end(tail + piece if tail else piece)
        if end < 0:
            self._parts.append(piece)
            self._size += len(piece)
            if self._size > self.max_line:
                raise self._too_big()
            return b""
        # >= 1: the kept partial line holds no whole separator, so one found ends inside this piece
        cut = end - len(tail)
        lines = b"".join([*self._parts, piece[:cut]])
        rest = piece[cut:]
        self._parts, self._size = ([rest], len(rest)) if rest else ([], 0)
        if len(lines) > self.max_line and any(len(line) > self.max_line for line in self._pattern.split(lines)):
            raise self._too_big()
        if self._size > self.max_line:
            raise self._too_big()
        return lines

    def split(self, lines: bytes) -> list[bytes]:
        """Complete lines (as `feed` returns them) one by one, each with its own separator (bytes unchanged)."""
        out, start = [], 0
        for match in self._pattern.finditer(lines):
            out.append(lines[start : match.end()])
            start = match.end()
        if start < len(lines):
            out.append(lines[start:])
        return out

    @property
    def pending(self) -> bytes:
        return b"".join(self._parts)

    def take_pending(self) -> bytes:
        """The partial line so far, handed out once (the splitter is empty afterwards)."""
        rest = b"".join(self._parts)
        self._parts, self._size = [], 0
        return rest


def is_count(value: Any, limit: int = MAX_TOKEN_COUNT) -> bool:
    """A non-negative finite number no larger than `limit` (a bool is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return math.isfinite(value) and 0 <= value <= limit


def check_counts(data: dict[str, Any], url: str) -> None:
    """Count fields must be non-negative finite numbers within their bound (or absent / null): anything else is a
    bad upstream."""
    for name in COUNT_FIELDS:
        value = data.get(name)
        if value is None:
            continue
        limit = MAX_TOKEN_COUNT if name in TOKEN_FIELDS else MAX_DURATION_NS
        if not is_count(value, limit):
            text = value if isinstance(value, str) else repr(value)
            raise BadBackendResponse(f"{url} sent a non-count {name} (not a number in 0..{limit}): {text[:50]!r}")


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
