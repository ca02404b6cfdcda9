"""The make targets a newcomer runs: `make fast` installs no llama.cpp build, the slow build says what it does and
shows pip's output, and CI runs `make test` (checked with `make -n`, which prints the commands without running)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def make(tmp_path: Path, *targets: str, dry: bool = True) -> str:
    assert shutil.which("make"), "make is needed to build the project"
    venv = tmp_path / "venv"  # a virtualenv that does not exist: every install step shows up
    argv = ["make", "--no-print-directory", *(["-n"] if dry else []), f"VENV={venv}", *targets]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_fast_installs_only_the_dev_extra(tmp_path: Path) -> None:
    out = make(tmp_path, "fast")
    installs = [line for line in out.splitlines() if "pip install" in line and "-e" in line]
    assert len(installs) == 1 and "'.[dev]'" in installs[0], installs
    assert "local" not in out and "llama" not in out.replace("no llama.cpp", "")
    assert 'pytest -m "not slow"' in out


@pytest.mark.parametrize("target", ["test", "demo"])
def test_the_llama_cpp_build_is_announced_and_visible(tmp_path: Path, target: str) -> None:
    out = make(tmp_path, target)
    (local,) = [line for line in out.splitlines() if "pip install" in line and "local]" in line]
    assert "--quiet" not in local and "-q " not in local  # pip's own progress stays on screen
    assert "about 8 minutes on 2 idle cores" in out and "caches" in out


def test_test_runs_lint_types_and_the_whole_suite(tmp_path: Path) -> None:
    out = make(tmp_path, "test")
    for command in ("ruff check .", "ruff format --check .", "mypy app", "-m pytest"):
        assert command in out, command
    assert "not slow" not in out.split("-m pytest", 1)[1].splitlines()[0]


def test_help_is_the_default_target(tmp_path: Path) -> None:
    out = make(tmp_path, dry=False)
    for target in ("make demo", "make fast", "make test"):
        assert target in out
    assert "8 minutes" in out
    assert not (tmp_path / "venv").exists()  # `make` alone installs nothing


def test_ci_runs_make_test() -> None:
    script = (ROOT / ".ci" / "run").read_text()
    assert 'make test PY="$PY"' in script
