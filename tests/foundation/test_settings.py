"""Settings: defaults, env prefix and nesting, TOML file, one-line errors naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.errors import ConfigError
from app.core.settings import load_settings


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SWARM_BACKEND", "SWARM_GPU_VRAM_GB", "SWARM_CONFIG_FILE"):
        monkeypatch.delenv(var, raising=False)
    s = load_settings()
    assert s.ollama_base_url == "http://localhost:11434"
    assert s.routing.lambda_token == 0.5 and s.routing.lambda_switch == 0.2
    assert s.routing.token_scale == 1000 and s.routing.switch_t_scale_ms == 1500
    assert s.database_url.startswith("sqlite:///") and "data" in s.database_url


def test_env_prefix_and_nesting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_GPU_VRAM_GB", "24")
    monkeypatch.setenv("SWARM_ROUTING__LAMBDA_SWITCH", "0.9")
    monkeypatch.setenv("SWARM_MODELS__PLANNER", "gemma2:2b")
    s = load_settings()
    assert s.gpu_vram_gb == 24.0
    assert s.routing.lambda_switch == 0.9
    assert s.models.planner == "gemma2:2b"


def test_toml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "swarm.toml"
    cfg.write_text('backend = "sim"\ngpu_vram_gb = 12.5\n[routing]\nlambda_token = 0.1\n')
    monkeypatch.setenv("SWARM_CONFIG_FILE", str(cfg))
    monkeypatch.delenv("SWARM_GPU_VRAM_GB", raising=False)
    s = load_settings()
    assert (s.backend, s.gpu_vram_gb, s.routing.lambda_token) == ("sim", 12.5, 0.1)
    # environment beats the file
    monkeypatch.setenv("SWARM_GPU_VRAM_GB", "6")
    assert load_settings().gpu_vram_gb == 6.0


@pytest.mark.parametrize(
    ("var", "value", "needle"),
    [
        ("SWARM_GPU_VRAM_GB", "-1", "SWARM_GPU_VRAM_GB: Input should be greater than or equal to 0"),
        ("SWARM_OLLAMA_BASE_URL", "ftp://host", "SWARM_OLLAMA_BASE_URL: must be an http(s) URL"),
        ("SWARM_BACKEND", "gpu", "SWARM_BACKEND: Input should be"),
        ("SWARM_ROUTING__LAMBDA_TOKEN", "-2", "SWARM_ROUTING__LAMBDA_TOKEN"),
        ("SWARM_DATABASE_URL", "nonsense", "SWARM_DATABASE_URL: must be an SQLAlchemy URL"),
        ("SWARM_KEEP_ALIVE", "bogus", "SWARM_KEEP_ALIVE: must be a duration"),
    ],
)
def test_bad_values_fail_with_one_line(monkeypatch: pytest.MonkeyPatch, var: str, value: str, needle: str) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert needle in info.value.message
    assert "\n" not in info.value.message


def test_missing_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SWARM_CONFIG_FILE", str(tmp_path / "nope.toml"))
    with pytest.raises(ConfigError, match="SWARM_CONFIG_FILE: file not found"):
        load_settings()
