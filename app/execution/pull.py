"""Pulling models through a backend: Ollama's /api/pull NDJSON progress stream (status, total, completed)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from app.backends.base import Backend
from app.core.errors import BadBackendResponse
from app.domain.models import Agent
from app.execution.catalog import CatalogWatch, Reconciled


@dataclass(frozen=True)
class PullStep:
    """One progress line of a pull: `total`/`completed` are bytes of the layer being downloaded, when given."""

    model: str
    status: str
    total: int | None = None
    completed: int | None = None


ProgressFn = Callable[[PullStep], None]


async def pull_model(backend: Backend, model: str, on_step: ProgressFn | None = None) -> None:
    """Pull one model; raises BadBackendResponse naming the model when the backend refuses or the stream errs."""
    reply = await backend.manage("POST", "/api/pull", json.dumps({"model": model, "stream": True}).encode())
    buffer, last = b"", ""
    async for block in reply.body:
        buffer += block
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            last = _line(model, line, reply.status, on_step) or last
    if buffer.strip():
        last = _line(model, buffer, reply.status, on_step) or last
    if reply.status != 200 or last != "success":
        raise BadBackendResponse(f"pulling {model} from {backend.name} did not finish (last status {last!r})")


def _line(model: str, line: bytes, status: int, on_step: ProgressFn | None) -> str | None:
    if not line.strip():
        return None
    try:
        data = json.loads(line)
    except ValueError:
        raise BadBackendResponse(f"pulling {model}: HTTP {status}: {line[:200]!r}") from None
    if not isinstance(data, dict):
        raise BadBackendResponse(f"pulling {model}: unexpected progress line {line[:200]!r}")
    if "error" in data:
        raise BadBackendResponse(f"pulling {model} failed: {data['error']}")
    step = PullStep(model, str(data.get("status", "")), _int(data.get("total")), _int(data.get("completed")))
    if on_step is not None:
        on_step(step)
    return step.status


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


async def ensure_models(
    backend: Backend, agents: list[Agent], watch: CatalogWatch, on_step: ProgressFn | None = None
) -> tuple[list[str], Reconciled]:
    """Pull every catalog model the backend lacks, then re-read its inventory: (pulled, reconciled)."""
    await watch.refresh(backend)
    missing = watch.reconcile(backend, agents).missing
    for model in missing:
        await pull_model(backend, model, on_step)
    await watch.refresh(backend)
    return missing, watch.reconcile(backend, agents)
