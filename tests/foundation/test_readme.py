"""The README cannot drift from the code: every code block marked `<!-- test: sim -->` runs on the simulator (HTTP
recipes against a fresh `swarm serve --dry_run` on a free port), files it names exist, and it tells what is."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent
ADMIN_KEY = "readme-admin-key"
MARKER = re.compile(r"^<!-- test: sim(?P<slow> slow)?(?: expect=\"(?P<expect>[^\"]+)\")? -->$")
PORT_IN_TEXT = re.compile(r"(localhost|127\.0\.0\.1):8000\b")


@dataclass
class Block:
    line: int
    lang: str
    code: str
    slow: bool
    expect: str | None

    @property
    def needs_server(self) -> bool:
        return bool(PORT_IN_TEXT.search(self.code))


def parse(text: str) -> list[Block]:
    lines = text.splitlines()
    blocks = []
    for i, line in enumerate(lines):
        m = MARKER.match(line.strip())
        if m is None:
            if line.strip().startswith("<!-- test:"):
                raise ValueError(f"README line {i + 1}: malformed test marker {line!r}")
            continue
        fence = lines[i + 1] if i + 1 < len(lines) else ""
        if not fence.startswith("```") or fence.strip() == "```":
            raise ValueError(f"README line {i + 1}: a test marker must sit right above a fenced block with a language")
        end = next(j for j in range(i + 2, len(lines)) if lines[j].startswith("```"))
        code = "\n".join(lines[i + 2 : end]) + "\n"
        blocks.append(Block(i + 1, fence[3:].strip(), code, bool(m["slow"]), m["expect"]))
    return blocks


BLOCKS = parse(README.read_text())


def _params() -> list[object]:
    out = []
    for b in BLOCKS:
        marks = [pytest.mark.slow] if b.slow else []
        out.append(pytest.param(b, id=f"line{b.line}-{b.lang}", marks=marks))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        SWARM_DATABASE_URL=f"sqlite:///{tmp_path / 'data' / 'swarm.db'}",
        SWARM_DATA_DIR=str(tmp_path / "data"),
        SWARM_RUNS_DIR=str(tmp_path / "runs"),
        SWARM_ADMIN_KEY=ADMIN_KEY,
    )
    return env


@pytest.fixture
def service(tmp_path: Path) -> Iterator[int]:
    """A fresh `swarm serve --dry_run` (its own database) on a free loopback port."""
    port = _free_port()
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [str(BIN / "swarm"), "serve", "--dry_run", "--port", str(port), "--log_level", "warning"],
        env=_env(tmp_path), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, "swarm serve --dry_run did not get ready"
                time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _run(block: Block, tmp_path: Path, port: int | None) -> subprocess.CompletedProcess[str]:
    code = PORT_IN_TEXT.sub(f"127.0.0.1:{port}", block.code) if port is not None else block.code
    if block.lang == "bash":
        for tool in re.findall(r"\b(curl|jq)\b", code):
            assert shutil.which(tool), f"the README's recipes use {tool}: install it (.ci/run does)"
        strict = "" if block.expect else "set -euo pipefail\n"
        argv = ["bash", "-c", strict + code]
    elif block.lang == "python":
        argv = [sys.executable, "-c", code]
    else:
        raise AssertionError(f"README line {block.line}: cannot run a {block.lang!r} block")
    return subprocess.run(argv, env=_env(tmp_path), cwd=tmp_path, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("block", _params())
def test_readme_block_runs(block: Block, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    port = request.getfixturevalue("service") if block.needs_server else None
    proc = _run(block, tmp_path, port)
    out = proc.stdout + proc.stderr
    if block.expect:
        assert block.expect in " ".join(out.split()), f"README line {block.line}: expected {block.expect!r}:\n{out}"
        return
    assert proc.returncode == 0, f"README line {block.line} exited {proc.returncode}:\n{out}"
    assert "Traceback" not in out and '{"error"' not in out, f"README line {block.line}:\n{out}"
    if block.code.startswith("swarm bench --dry_run"):
        (report,) = (tmp_path / "runs").glob("*_bench/report.json")
        check_results_table(README.read_text(), block, json.loads(report.read_text()))


# README results table column -> (report.json per-mode key, decimals shown); timing columns are not compared.
RESULT_COLUMNS = {
    "swaps / job": ("avg_models_swapped_in", 3),
    "peak VRAM GB": ("peak_vram_gb", 1),
    "VRAM violation rate": ("vram_violation_rate", 3),
    "token cost / job": ("token_cost_mean", 3),
    "oracle gap / step": ("oracle_gap_per_step_mean", 3),
}


def check_results_table(text: str, block: Block, report: dict[str, Any]) -> None:
    """The markdown table after the block states what the run's (seeded, deterministic) report says."""
    lines = text.splitlines()[block.line :]
    start = next(i for i, line in enumerate(lines) if line.startswith("| mode"))
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[start:end]]
    head, body = rows[0], rows[2:]
    assert {r[0].split()[0] for r in body} == set(report["modes"]), "one row per mode of the run"
    for row in body:
        mode = report["modes"][row[0].split()[0]]
        score, ci = row[head.index("score ± 95% CI")].split(" ± ")
        assert (score, ci) == (f"{mode['avg_score']:.3f}", f"{mode['ci95']:.3f}"), row
        for column, (key, digits) in RESULT_COLUMNS.items():
            assert row[head.index(column)] == f"{mode[key]:.{digits}f}", (row[0], column)


def test_the_readme_has_runnable_blocks() -> None:
    langs = {b.lang for b in BLOCKS}
    assert len(BLOCKS) >= 8 and {"bash", "python"} <= langs
    assert any(b.expect for b in BLOCKS) and any(b.needs_server for b in BLOCKS)


def test_markers_are_checked() -> None:
    with pytest.raises(ValueError, match="fenced block"):
        parse("<!-- test: sim -->\ntext, not a fence\n")
    with pytest.raises(ValueError, match="malformed"):
        parse("<!-- test: simulator -->\n```bash\ntrue\n```\n")
    (block,) = parse('<!-- test: sim slow expect="x y" -->\n```bash\necho "x  y"\n```\n')
    assert (block.slow, block.expect, block.code) == (True, "x y", 'echo "x  y"\n')


def test_a_failing_block_fails(tmp_path: Path) -> None:
    proc = _run(Block(0, "bash", "swarm run --dry_run --gpu_vram_gb -1 --query q\n", False, None), tmp_path, None)
    assert proc.returncode == 2 and "--gpu_vram_gb" in proc.stderr


def test_files_the_readme_names_exist() -> None:
    text = README.read_text()
    named = set(re.findall(r"`([\w./-]+/[\w.-]+\.(?:py|md|yml|yaml|toml))`", text))
    named |= set(re.findall(r"\b([\w-]+\.md)\b", text)) - {"README.md"}
    assert named, "the pattern finds nothing"
    missing = [p for p in sorted(named) if not (ROOT / p).exists() and not (ROOT / "app" / p).exists()]
    assert not missing, f"the README names files that are not in the repository: {missing}"


def test_readme_tells_what_is() -> None:
    """Present tense: no narration of how the project got here."""
    text = README.read_text()
    history = re.findall(r"(?i)\b(?:was|were|earlier runs?|previously|used to|no longer|before the changes?)\b", text)
    assert not history, history
