"""VRAM budget detection: `gpu_vram_gb` 0 / unset means NVML, then nvidia-smi, then the default; the source is named."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from app.cli import main
from app.cli.common import settings_from
from app.core.gpu import DEFAULT_GPU_VRAM_GB, detect_vram_gb
from app.core.settings import Settings, load_settings


def _fake_smi(folder: Path, body: str) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    exe = folder / "nvidia-smi"
    exe.write_text(f"#!/bin/sh\n{body}\n", encoding="utf-8")
    exe.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("SWARM_GPU_VRAM_GB", "SWARM_CONFIG_FILE"):
        monkeypatch.delenv(var, raising=False)


def test_nvidia_smi_is_read_when_nvml_is_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _fake_smi(tmp_path / "bin", 'echo "24576"')  # MiB, as nvidia-smi prints with nounits
    assert detect_vram_gb(path) == (round(24576 * 1024 * 1024 / 1e9, 2), "nvidia-smi")
    monkeypatch.setenv("PATH", path)
    s = load_settings()
    assert (s.gpu_vram_gb, s.gpu_vram_source) == (25.77, "nvidia-smi")
    explicit = load_settings(gpu_vram_gb=6)
    assert (explicit.gpu_vram_gb, explicit.gpu_vram_source) == (6.0, "setting")


def test_a_failing_nvidia_smi_falls_back_to_the_default(tmp_path: Path) -> None:
    assert detect_vram_gb(_fake_smi(tmp_path / "broken", "exit 9")) == (DEFAULT_GPU_VRAM_GB, "default")
    assert detect_vram_gb(_fake_smi(tmp_path / "garbage", "echo 'No devices were found'")) == (8.0, "default")
    assert detect_vram_gb(str(tmp_path / "empty")) == (8.0, "default")


def test_nvml_comes_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "nvml"
    fake.mkdir()
    (fake / "pynvml.py").write_text(
        "class _Info:\n    total = 12_000_000_000\n"
        "def nvmlInit(): pass\ndef nvmlShutdown(): pass\n"
        "def nvmlDeviceGetHandleByIndex(i): return i\ndef nvmlDeviceGetMemoryInfo(h): return _Info()\n",
        encoding="utf-8",
    )
    monkeypatch.syspath_prepend(str(fake))
    path = _fake_smi(tmp_path / "bin", 'echo "24576"')
    try:
        assert detect_vram_gb(path) == (12.0, "nvml")
    finally:
        sys.modules.pop("pynvml", None)  # the fake must not outlive this test


def test_cli_zero_means_detect(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", _fake_smi(tmp_path / "bin", 'echo "16384"'))
    from app.cli import build_parser

    args = build_parser().parse_args(["run", "--query", "x", "--gpu_vram_gb", "0"])
    s: Settings = settings_from(args)
    assert (s.gpu_vram_gb, s.gpu_vram_source) == (17.18, "nvidia-smi")
    args = build_parser().parse_args(["run", "--query", "x", "--gpu_vram_gb", "5"])
    assert settings_from(args).gpu_vram_gb == 5.0
    assert main(["run", "--query", "x", "--gpu_vram_gb", "-1"]) == 2
