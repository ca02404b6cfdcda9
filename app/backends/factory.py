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
    """`kw` goes to the backend's constructor (e.g. deadline_s, keep_alive, true_quality, n_ctx).
    Imports are lazy so that choosing "sim" never touches llama.cpp."""
    if kind == "ollama":
        from app.backends.ollama import OllamaBackend

        return OllamaBackend(client, ollama_base_url, **kw)
    if kind == "sim":
        from app.backends.sim import SimBackend

        return SimBackend(agents, gpu_vram_gb, seed=seed, time_scale=time_scale, **kw)
    if kind == "local":
        from app.backends.local import LocalBackend

        return LocalBackend(agents, gpu_vram_gb, **kw)
    raise ValueError(f"unknown backend kind {kind!r}; expected one of {', '.join(BACKEND_KINDS)}")
