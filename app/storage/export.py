"""JSONL export and import of telemetry events (one JSON object per line)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, TextIO

from app.core.errors import ValidationFailed
from app.storage.models import TelemetryEvent
from app.storage.repo import Repo

EXPORT_FIELDS = ("id", "tenant_id", "job_id", "ts", "event_type", "payload")


def parse_since(value: str | None, field: str = "since") -> float | None:
    """An ISO 8601 timestamp or epoch seconds, as epoch seconds."""
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise ValidationFailed(f"{field}: expected an ISO timestamp or epoch seconds, got {value!r}") from None


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


def parse_line(line: str, lineno: int, tenant_id: str | None) -> TelemetryEvent:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"line {lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise ValidationFailed(f"line {lineno}: expected a JSON object")
    missing = [k for k in ("ts", "event_type", "payload") if k not in obj]
    if missing:
        raise ValidationFailed(f"line {lineno}: missing field(s) {', '.join(missing)}")
    if not isinstance(obj["payload"], dict) or not isinstance(obj["ts"], int | float):
        raise ValidationFailed(f"line {lineno}: 'payload' must be an object and 'ts' a number")
    return TelemetryEvent(
        tenant_id=tenant_id or str(obj.get("tenant_id") or "default"),
        job_id=obj.get("job_id"),
        ts=float(obj["ts"]),
        event_type=str(obj["event_type"]),
        payload=obj["payload"],
    )


def import_jsonl(repo: Repo, lines: Iterable[str], tenant_id: str | None = None) -> int:
    """Validate every line first, then insert all in one transaction: a bad file stores nothing."""
    events = [parse_line(line, i, tenant_id) for i, line in enumerate(lines, 1) if line.strip()]
    repo.add_events(events)
    return len(events)
