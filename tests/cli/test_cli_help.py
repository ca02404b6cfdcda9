"""`swarm --help` stays light (no numpy, solvers, plots or web stack imported), and every flag is documented once
with its default; the help's spelled-out names and defaults agree with the code they stand for."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.cli import build_parser, main
from app.cli.helptext import SETTING_DEFAULTS, Formatter
from app.domain.knobs import KnobOverrides

ROOT = Path(__file__).resolve().parents[2]
# Modules a help screen must not pull in: the numeric/solver/plot stack and the service's web and database layers.
HEAVY = ("numpy", "scipy", "cvxpy", "highspy", "matplotlib", "fastapi", "sqlalchemy", "llama_cpp")
PROBE = """
import json, sys
from app.cli import main
code = main(sys.argv[2:])
json.dump({"code": code, "modules": sorted(sys.modules)}, open(sys.argv[1], "w"))
"""
HELP_SCREENS = [
    ["--help"],
    ["run", "--help"],
    ["bench", "--help"],
    ["experiment", "--help"],
    ["serve", "--help"],
    ["sim-ollama", "--help"],
    ["write-agents", "--help"],
    ["models", "--help"],
    ["calibrate", "--help"],
    ["export", "--help"],
    ["import", "--help"],
    ["db", "upgrade", "--help"],
]


def _parsers(parser: argparse.ArgumentParser, name: str = "swarm") -> list[tuple[str, argparse.ArgumentParser]]:
    out = [(name, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                out += _parsers(sub, f"{name} {sub_name}")
    return out


def _formatted_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    text = Formatter(parser.prog)._get_help_string(action)
    return text or ""


@pytest.mark.parametrize("argv", HELP_SCREENS, ids=lambda a: " ".join(a))
def test_help_imports_nothing_heavy(argv: list[str], tmp_path: Path) -> None:
    out = tmp_path / "probe.json"
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, str(out), *argv], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert result["code"] == 0
    assert "usage: swarm" in proc.stdout
    loaded = {m.split(".")[0] for m in result["modules"]}
    assert not loaded & set(HEAVY), sorted(loaded & set(HEAVY))


def test_the_probe_sees_heavy_imports(tmp_path: Path) -> None:
    """The check above can fail: a command that does import the stack shows up in sys.modules."""
    out = tmp_path / "probe.json"
    code = PROBE.replace("code = main(sys.argv[2:])", "import app.bench.runner; code = 0")
    subprocess.run([sys.executable, "-c", code, str(out)], cwd=ROOT, check=True, timeout=60)
    assert "numpy" in json.loads(out.read_text())["modules"]


def test_every_flag_has_help_and_shows_its_default() -> None:
    missing, no_default = [], []
    for name, parser in _parsers(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            label = f"{name} {'/'.join(action.option_strings) or action.dest}"
            if not action.help or action.help == argparse.SUPPRESS:
                missing.append(label)
                continue
            if not action.option_strings or action.required or isinstance(action, argparse._StoreConstAction):
                continue  # positionals, required flags and on/off switches have no default to show
            from_settings = action.dest in SETTING_DEFAULTS or action.dest in KnobOverrides.model_fields
            has_default = action.default not in (None, []) or from_settings or action.dest == "routing"
            if has_default and "default" not in _formatted_help(parser, action):
                no_default.append(label)
    assert not missing, f"flags without help: {missing}"
    assert not no_default, f"flags whose help does not show the default: {no_default}"


def test_the_walk_finds_undocumented_flags() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    sub.choices["run"].add_argument("--undocumented_knob", type=float)
    names = [a.option_strings for _, p in _parsers(parser) for a in p._actions if a.help is None and a.option_strings]
    assert ["--undocumented_knob", "--undocumented-knob"] in names


def test_help_shows_one_spelling_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--help"]) == 0
    text = capsys.readouterr().out
    assert "--gpu_vram_gb" in text and "--gpu-vram-gb" not in text
    assert "--lambda_switch" in text and "--lambda-switch" not in text
    assert "(default: SWARM_ROUTING__LAMBDA_SWITCH, else 0.2)" in " ".join(text.split())
    assert "(default: 20)" in text  # --limit
    assert main(["experiment", "--help"]) == 0
    assert "(default: 6)" in capsys.readouterr().out  # experiment's own --limit default


def test_dash_spelling_still_works() -> None:
    args = build_parser().parse_args(["run", "--query", "q", "--gpu-vram-gb", "4", "--lambda-switch", "0.7"])
    assert args.gpu_vram_gb == 4.0 and args.lambda_switch == 0.7


def test_help_defaults_are_the_settings_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.core.settings import Settings

    for name in list(os.environ):
        if name.startswith("SWARM_"):
            monkeypatch.delenv(name)
    s = Settings()
    actual = {
        "gpu_vram_gb": s.gpu_vram_gb,
        "backend": s.backend,
        "ollama_base_url": s.ollama_base_url,
        "database_url": s.database_url,
        "runs_dir": s.runs_dir,
        "time_scale": s.sim_time_scale,
        "host": s.host,
        "port": s.port,
    }
    assert set(actual) == set(SETTING_DEFAULTS)
    for dest, (env, shown) in SETTING_DEFAULTS.items():
        value = actual[dest]
        if isinstance(value, float | int):
            assert float(shown) == value, dest
        elif isinstance(value, Path):
            assert Path(shown) == value, dest
        else:
            assert shown == value, dest
        assert env.startswith("SWARM_")


def test_spelled_out_names_match_the_code() -> None:
    from app.bench import presets
    from app.bench.experiments import SUITE_BENCHMARKS
    from app.bench.registry import list_benchmarks
    from app.cli import bench, data
    from app.storage import repo

    assert list(bench.BENCHMARKS) == list_benchmarks()
    assert tuple(bench.PRESETS) == tuple(presets.PRESETS)
    assert tuple(bench.SUITES) == tuple(SUITE_BENCHMARKS)
    assert data.DEFAULT_TENANT == repo.DEFAULT_TENANT
