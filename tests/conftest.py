"""Shared fixtures: Settings rooted in tmp_path, and the asyncio backend for anyio tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        backend="sim",
        database_url=f"sqlite:///{tmp_path / 'swarm.db'}",
        data_dir=tmp_path / "data",
        runs_dir=tmp_path / "runs",
        agents_file=CONFIGS / "agents_heavy.json",
        gpu_vram_gb=8.0,
    )
