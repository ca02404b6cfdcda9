"""Where the data directories that ship with the code are: migrations/ and configs/."""

from __future__ import annotations

from pathlib import Path

from app.core.errors import ConfigError

PACKAGE = Path(__file__).resolve().parents[1]  # app/


def resource_dir(name: str) -> Path:
    """`migrations` or `configs`: beside app/ in a checkout (and an editable install), inside the package in a
    wheel install (pyproject.toml maps them there)."""
    for candidate in (PACKAGE.parent / name, PACKAGE / name):
        if candidate.is_dir():
            return candidate
    raise ConfigError(f"{name}/ not found beside or inside {PACKAGE}: the installation is incomplete")


def config_file(name: str) -> Path:
    return resource_dir("configs") / name
