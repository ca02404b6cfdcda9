"""make_backend picks the right backend for each kind and names the kinds when given a wrong one."""

from __future__ import annotations

import sys

import httpx
import pytest

from app.backends.factory import make_backend
from app.backends.ollama import OllamaBackend
from app.backends.sim import SimBackend
from app.core.errors import BackendUnavailable
from app.domain.models import Agent

AGENTS = [
    Agent(name="m:1b", cost_per_token=0.1, max_ctx=2048, capabilities={"code": 0.5}, vram_gb=1.0, load_time_ms=10)
]

pytestmark = pytest.mark.anyio


async def test_ollama_kind_uses_the_shared_client() -> None:
    async with httpx.AsyncClient() as client:
        backend = make_backend(
            "ollama", client=client, ollama_base_url="http://h:11434/", agents=AGENTS, gpu_vram_gb=8, deadline_s=7
        )
        assert isinstance(backend, OllamaBackend)
        assert backend.transport._client is client  # type: ignore[attr-defined]
        assert backend.name == "http://h:11434" and backend.deadline_s == 7


async def test_sim_kind_gets_agents_capacity_seed_and_time_scale() -> None:
    backend = make_backend("sim", client=None, ollama_base_url="", agents=AGENTS, gpu_vram_gb=6, seed=3, time_scale=0.5)
    assert isinstance(backend, SimBackend)
    assert (backend.seed, backend.time_scale, backend.memory.capacity_gb) == (3, 0.5, 6)
    assert [t["name"] for t in await backend.installed()] == ["m:1b"]


def test_local_kind_without_llama_cpp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "llama_cpp", None)
    with pytest.raises(BackendUnavailable, match="local"):
        make_backend("local", client=None, ollama_base_url="", agents=AGENTS, gpu_vram_gb=1)


def test_unknown_kind_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match=r"'gpu'.*ollama, sim, local"):
        make_backend("gpu", client=None, ollama_base_url="", agents=AGENTS, gpu_vram_gb=1)
