"""GPU memory detection for the VRAM budget: NVML (nvidia-ml-py, optional), then nvidia-smi, then the default."""

from __future__ import annotations

import importlib
import shutil
import subprocess
from functools import lru_cache

DEFAULT_GPU_VRAM_GB = 8.0
MIB = 1024 * 1024


def detect_vram_gb(path: str | None = None) -> tuple[float, str]:
    """(total memory of GPU 0 in GB, source): source is "nvml", "nvidia-smi" or "default"."""
    found = _nvml()
    if found is not None:
        return found, "nvml"
    found = _nvidia_smi(path)
    if found is not None:
        return found, "nvidia-smi"
    return DEFAULT_GPU_VRAM_GB, "default"


def _nvml() -> float | None:
    try:
        pynvml = importlib.import_module("pynvml")
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
        try:
            info = pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(0))
            return round(float(info.total) / 1e9, 2)
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # no driver, no device: NVML raises its own error types
        return None


@lru_cache(maxsize=8)
def _nvidia_smi(path: str | None) -> float | None:
    exe = shutil.which("nvidia-smi", path=path)
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
        mib = float(out.strip().splitlines()[0].strip())
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None
    return round(mib * MIB / 1e9, 2) if mib > 0 else None
