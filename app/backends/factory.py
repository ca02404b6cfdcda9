"""Build a Backend by kind ("ollama", "sim", "local") from the run's settings."""

from __future__ import annotations

from typing import Any

import httpx

from app.backends.base import Backend
from app.domain.models import Agent

BACKEND_KINDS = ("ollama", "sim", "local")


def make_backend(
    kind: str,
    *,
    client: httpx.AsyncClient | None,
    ollama_base_url: str,
    agents: list[Agent],
    gpu_vram_gb: float,
    seed: int = 0,
    time_scale: float = 0.0,
    **kw: Any,
) -> Backend:
    """`kw` goes to the backend's constructor (e.g. keep_alive, true_quality, n_ctx); for Ollama, `transport`
    ("lean" or "httpx"), `deadline_s` and `headers` build its transport.
    Imports are lazy so that choosing "sim" never touches llama.cpp."""
    if kind == "ollama":
        from app.backends.ollama import OllamaBackend
        from app.backends.transport import make_transport

        deadline_s = float(kw.pop("deadline_s", 600.0))
        kind_of, headers, limits = kw.pop("transport", "httpx"), kw.pop("headers", None), kw.pop("limits", None)
        transport = make_transport(
            kind_of, ollama_base_url, client=client, deadline_s=deadline_s, headers=headers, limits=limits
        )
        return OllamaBackend(transport, **kw)
    if kind == "sim":
        from app.backends.sim import SimBackend

        return SimBackend(agents, gpu_vram_gb, seed=seed, time_scale=time_scale, **kw)
    if kind == "local":
        from app.backends.local import LocalBackend

        return LocalBackend(agents, gpu_vram_gb, **kw)
    raise ValueError(f"unknown backend kind {kind!r}; expected one of {', '.join(BACKEND_KINDS)}")
