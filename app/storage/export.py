"""JSONL export and import of telemetry events (one JSON object per line)."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, NamedTuple, TextIO

from app.core.errors import ValidationFailed
from app.storage.models import TelemetryEvent
from app.storage.repo import Repo

EXPORT_FIELDS = ("id", "tenant_id", "job_id", "ts", "event_type", "payload")
MAX_EVENT_TYPE = 40  # TelemetryEvent.event_type
MAX_ID = 64  # TelemetryEvent.tenant_id / job_id


def parse_since(value: str | None, field: str = "since") -> float | None:
    """An ISO 8601 timestamp or epoch seconds, as epoch seconds (always finite)."""
    if value is None:
        return None
    try:
        ts = float(value)
    except ValueError:
        try:
            ts = datetime.fromisoformat(value.strip().replace("Z", "+00:00")).timestamp()
        except (ValueError, OverflowError, OSError):
            raise ValidationFailed(f"{field}: expected an ISO timestamp or epoch seconds, got {value!r}") from None
    if not math.isfinite(ts):
        raise ValidationFailed(f"{field}: must be a finite timestamp, got {value!r}")
    return ts


def event_to_dict(event: TelemetryEvent) -> dict[str, Any]:
    return {name: getattr(event, name) for name in EXPORT_FIELDS}


def iter_jsonl(events: Iterable[TelemetryEvent]) -> Iterator[str]:
    for event in events:
        yield json.dumps(event_to_dict(event), separators=(",", ":"), sort_keys=True) + "\n"


def write_jsonl(repo: Repo, out: TextIO, tenant_id: str, **filters: Any) -> int:
    n = 0
    for line in iter_jsonl(repo.iter_events(tenant_id, **filters)):
        out.write(line)
        n += 1
    return n


def _optional_id(obj: dict[str, Any], key: str, lineno: int) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_ID:
        raise ValidationFailed(f"line {lineno}: {key!r} must be a non-empty string of at most {MAX_ID} characters")
    return value


def parse_line(line: str, lineno: int, tenant_id: str | None) -> TelemetryEvent:
    """One exported line as an event (not yet stored); every problem names the line."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"line {lineno}: invalid JSON ({exc.msg})") from None
    except RecursionError:
        raise ValidationFailed(f"line {lineno}: JSON nested too deeply") from None
    if not isinstance(obj, dict):
        raise ValidationFailed(f"line {lineno}: expected a JSON object")
    missing = [k for k in ("ts", "event_type", "payload") if k not in obj]
    if missing:
        raise ValidationFailed(f"line {lineno}: missing field(s) {', '.join(missing)}")
    ts = obj["ts"]
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        raise ValidationFailed(f"line {lineno}: 'ts' must be a finite number")
    event_type = obj["event_type"]
    if not isinstance(event_type, str) or not event_type.strip() or len(event_type) > MAX_EVENT_TYPE:
        raise ValidationFailed(
            f"line {lineno}: 'event_type' must be a non-empty string of at most {MAX_EVENT_TYPE} characters"
        )
    if not isinstance(obj["payload"], dict):
        raise ValidationFailed(f"line {lineno}: 'payload' must be an object")
    owner = _optional_id(obj, "tenant_id", lineno)
    return TelemetryEvent(
        tenant_id=tenant_id or owner or "default",
        job_id=_optional_id(obj, "job_id", lineno),
        ts=float(ts),
        event_type=event_type,
        payload=obj["payload"],
    )


class ImportReport(NamedTuple):
    imported: int
    skipped: int  # already stored: same tenant, job, ts, event type and payload


def _key(event: TelemetryEvent) -> tuple[str, str | None, float, str, str]:
    payload = json.dumps(event.payload, sort_keys=True, separators=(",", ":"), default=str)
    return (event.tenant_id, event.job_id, float(event.ts), event.event_type, payload)


def import_events(repo: Repo, lines: Iterable[str], tenant_id: str | None = None) -> ImportReport:
    """Validate every line first, then insert all new events in one transaction: a bad file stores nothing.

    Events already stored (same tenant, job, ts, type and payload) are skipped, so importing a file twice
    adds nothing the second time.
    """
    parsed = [(i, parse_line(line, i, tenant_id)) for i, line in enumerate(lines, 1) if line.strip()]
    first_line: dict[str, int] = {}
    for lineno, event in parsed:
        first_line.setdefault(event.tenant_id, lineno)
    for owner, lineno in first_line.items():
        if repo.get_tenant(owner) is None:
            raise ValidationFailed(f"line {lineno}: tenant {owner!r} does not exist (use --tenant NAME to re-own)")
    existing: Counter[tuple[str, str | None, float, str, str]] = Counter()
    for owner in first_line:
        since = min(e.ts for _, e in parsed if e.tenant_id == owner)
        existing.update(_key(e) for e in repo.iter_events(owner, since=since))
    fresh: list[TelemetryEvent] = []
    for _, event in parsed:
        key = _key(event)
        if existing[key] > 0:
            existing[key] -= 1
        else:
            fresh.append(event)
    if fresh:
        repo.add_events(fresh)
    return ImportReport(len(fresh), len(parsed) - len(fresh))


def import_jsonl(repo: Repo, lines: Iterable[str], tenant_id: str | None = None) -> int:
    """Like import_events; returns how many events were added."""
    return import_events(repo, lines, tenant_id).imported
