"""Live servers for the proxy tests: real uvicorn on free loopback ports, each in a background thread."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from app.backends.sim import SimBackend
from app.cli.sim import build_sim_app
from app.core.settings import Settings
from app.main import create_app
from app.routing import load_agents

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
ADMIN_KEY = "admin-secret"
BIG_G = 24.0


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Run `app` under uvicorn on 127.0.0.1:<free port> in a thread; yields its base URL, then shuts it down."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        assert not thread.is_alive(), "uvicorn did not shut down"


def sim_backend(gpu_vram_gb: float = BIG_G, time_scale: float = 0.0) -> SimBackend:
    return SimBackend(load_agents(CONFIGS / "agents_heavy.json"), gpu_vram_gb, seed=7, time_scale=time_scale)


def router_settings(root: Path, **over: object) -> Settings:
    base = Settings(
        backend="ollama",
        database_url=f"sqlite:///{root / 'swarm.db'}",
        data_dir=root / "data",
        runs_dir=root / "runs",
        agents_file=CONFIGS / "agents_heavy.json",
        gpu_vram_gb=BIG_G,
    )
    return base.model_copy(update=over)


@dataclass
class Stack:
    """The simulated Ollama server and the router in front of it, both live on loopback."""

    sim_url: str
    router_url: str
    sim: SimBackend


@contextmanager
def stack(root: Path, **settings: object) -> Iterator[Stack]:
    sim = sim_backend()
    with serve(build_sim_app(sim)) as sim_url:
        cfg = router_settings(root, ollama_base_url=sim_url, **settings)
        app = create_app(cfg)  # backend "ollama" at the sim's URL: the same wiring as `swarm serve`
        with serve(app) as router_url:
            yield Stack(sim_url, router_url, sim)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One sim + router pair per test module (admin key set, no keyed tenants: the open default tenant)."""
    with stack(tmp_path_factory.mktemp("live"), admin_key=ADMIN_KEY) as s:
        yield s
