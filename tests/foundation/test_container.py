"""The container files mean what the README says, checked without a Docker engine: `docker compose config` on the
compose files, hadolint and focused checks on the Dockerfile, the .dockerignore'd build context, and the image's
install and entrypoint run in a fresh virtualenv."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from app.routing import load_agents

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _tool(name: str) -> str:
    found = shutil.which(name, path=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    assert found, f"{name} not found: it comes with the dev extra (pip install -e '.[dev]')"
    return found


def compose(tmp_path: Path, *files: str, **env: str) -> dict[str, Any]:
    """`docker compose config` as JSON, with only `env` set (no .env file, no SWARM_* from the caller)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SWARM_", "COMPOSE_"))}
    empty = tmp_path / "empty.env"
    empty.write_text("")
    argv = [_tool("docker-compose"), "--project-directory", str(ROOT), "--env-file", str(empty)]
    for f in files or ("docker-compose.yml",):
        argv += ["-f", str(ROOT / f)]
    proc = subprocess.run(
        [*argv, "config", "--format", "json"], capture_output=True, text=True, env={**clean, **env}, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    config: dict[str, Any] = json.loads(proc.stdout)
    return config


def dockerfile() -> list[tuple[str, str]]:
    """(instruction, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def instruction(name: str) -> list[str]:
    return [args for op, args in dockerfile() if op == name]


def readme_pulls() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## docker-compose", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"ollama pull ([\w.:\-/]+)", section)


# ---------------------------------------------------------------------------------------------------------------
# compose


def test_router_is_published_on_loopback_unless_asked(tmp_path: Path) -> None:
    (port,) = compose(tmp_path)["services"]["router"]["ports"]
    assert (port["host_ip"], str(port["published"]), port["target"]) == ("127.0.0.1", "8000", 8000)
    (port,) = compose(tmp_path, SWARM_BIND="0.0.0.0", SWARM_PUBLISH_PORT="9000")["services"]["router"]["ports"]
    assert (port["host_ip"], str(port["published"])) == ("0.0.0.0", "9000")
    assert "ports" not in compose(tmp_path)["services"]["ollama"]  # Ollama itself is reached only by the router


def test_budget_is_one_variable_with_a_default(tmp_path: Path) -> None:
    assert compose(tmp_path)["services"]["router"]["environment"]["SWARM_GPU_VRAM_GB"] == "8"
    env = compose(tmp_path, SWARM_GPU_VRAM_GB="24")["services"]["router"]["environment"]
    assert env["SWARM_GPU_VRAM_GB"] == "24"


def test_gpu_comes_from_the_override_file(tmp_path: Path) -> None:
    assert "deploy" not in compose(tmp_path)["services"]["ollama"]  # runs as is on a machine without a GPU
    gpu = compose(tmp_path, "docker-compose.yml", "docker-compose.gpu.yml")["services"]["ollama"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["capabilities"] == ["gpu"]
    assert gpu["image"].startswith("ollama/ollama")  # the override adds to the service, it does not replace it


def test_router_reaches_ollama_and_waits_for_it(tmp_path: Path) -> None:
    services = compose(tmp_path)["services"]
    router = services["router"]
    assert router["environment"]["SWARM_BACKEND"] == "ollama"
    assert router["environment"]["SWARM_OLLAMA_BASE_URL"] == "http://ollama:11434"
    assert router["depends_on"]["ollama"]["condition"] == "service_healthy"
    assert "healthcheck" in services["ollama"]
    assert router["build"]["context"] == str(ROOT)
    assert router["environment"]["SWARM_ADMIN_KEY"] == ""  # admin endpoints off unless a key is given


def test_default_catalog_is_what_the_readme_pulls(tmp_path: Path) -> None:
    path = compose(tmp_path)["services"]["router"]["environment"]["SWARM_AGENTS_FILE"]
    (workdir,) = instruction("WORKDIR")
    assert path.startswith(workdir.rstrip("/") + "/configs/"), path  # a file the image copies (COPY configs)
    agents = load_agents(ROOT / Path(path).relative_to(workdir))
    pulls = readme_pulls()
    assert pulls and sorted(pulls) == sorted(a.name for a in agents)
    budget = float(compose(tmp_path)["services"]["router"]["environment"]["SWARM_GPU_VRAM_GB"])
    assert sum(a.vram_gb for a in agents) <= budget  # the default budget holds the whole default catalog


def test_router_environment_is_valid_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.core.settings import load_settings

    env = compose(tmp_path, SWARM_ADMIN_KEY="k")["services"]["router"]["environment"]
    for name in list(os.environ):
        if name.startswith("SWARM_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    s = load_settings()
    assert (s.backend, s.gpu_vram_gb, s.admin_key) == ("ollama", 8.0, "k")


# ---------------------------------------------------------------------------------------------------------------
# Dockerfile and build context


def test_hadolint_is_clean() -> None:
    proc = subprocess.run([_tool("hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_facts() -> None:
    (base,) = instruction("FROM")
    assert re.fullmatch(r"python:3\.11-slim", base)  # pyproject: requires-python >= 3.11
    (user,) = instruction("USER")
    assert user.isdigit() and user != "0"
    (expose,) = instruction("EXPOSE")
    cmd = json.loads(instruction("CMD")[0])
    assert cmd[:2] == ["swarm", "serve"] and cmd[cmd.index("--port") + 1] == expose
    assert cmd[cmd.index("--host") + 1] == "0.0.0.0"  # inside the container; compose publishes on loopback
    (health,) = instruction("HEALTHCHECK")
    assert f"127.0.0.1:{expose}/healthz" in health
    env = " ".join(instruction("ENV"))
    assert "SWARM_DATABASE_URL=sqlite:////data/" in env and '"/data"' in instruction("VOLUME")[0]


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore rule for the patterns used here: a path is out when it or a parent matches."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        p = pattern.lstrip("/")
        for prefix in prefixes:
            if fnmatch.fnmatch(prefix, p) or (p.startswith("**/") and fnmatch.fnmatch(prefix.split("/")[-1], p[3:])):
                return True
    return False


def _context_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns)  # _ignored does not model exceptions
    return patterns


def _copied_sources() -> list[str]:
    sources = []
    for args in instruction("COPY"):
        sources += args.split()[:-1]
    return sources


def test_build_context_has_what_the_image_copies_and_nothing_heavy() -> None:
    patterns = _context_patterns()
    for source in _copied_sources():
        assert (ROOT / source).exists(), source
        assert not _ignored(source, patterns), f"{source} is COPY'd but .dockerignore'd"
    heavy_paths = [".venv", ".venv/lib/x.py", "data/swarm.db", "runs/r1/summary.json", ".git/HEAD", "swarm.db"]
    heavy_paths += ["app/__pycache__/x.pyc", ".mypy_cache/x", ".pytest_cache/x", ".ruff_cache/x"]
    for heavy in heavy_paths:
        assert _ignored(heavy, patterns), heavy
    assert not _ignored("app/main.py", patterns) and not _ignored("configs/agents_fast.json", patterns)


# ---------------------------------------------------------------------------------------------------------------
# The image's install and entrypoint, in a fresh virtualenv


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _image_env(tmp_path: Path, port: int) -> dict[str, str]:
    """The Dockerfile's ENV with /data moved under tmp_path, on the simulator instead of Ollama."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWARM_")}
    for args in instruction("ENV"):
        for name, value in re.findall(r"(\w+)=(\S+)", args):
            env[name] = value.replace("/data", str(tmp_path / "data"))
    env.update(SWARM_BACKEND="sim", SWARM_HOST="127.0.0.1", SWARM_PORT=str(port))
    return env


def _install_like_the_image(tmp_path: Path, *, full: bool) -> Path:
    """Build the wheel from only what the Dockerfile copies, then `pip install` it into a fresh venv. `full`
    resolves the dependencies like the image does; otherwise they come from this environment via a .pth file."""
    ctx = tmp_path / "context"
    ctx.mkdir()
    for source in _copied_sources():
        src = ROOT / source
        ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
        (shutil.copytree(src, ctx / source, ignore=ignore) if src.is_dir() else shutil.copy2(src, ctx / source))
    wheel_cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", "dist", "."]
    subprocess.run(wheel_cmd, cwd=ctx, check=True, capture_output=True, timeout=300)
    (wheel,) = (ctx / "dist").glob("*.whl")
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    if not full:
        site = subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip
        shared = [p for p in sys.path if p.endswith("site-packages")]
        Path(site, "shared_deps.pth").write_text("\n".join(shared) + "\n")
    install = [str(py), "-m", "pip", "install", "-q", *([] if full else ["--no-deps"]), str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=900, cwd=tmp_path)
    return venv


def _serve_and_probe(venv: Path, tmp_path: Path) -> None:
    port = _free_port()
    env = _image_env(tmp_path, port)
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import app; print(app.__file__)"],
        env=env, cwd=tmp_path, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert where.startswith(str(venv)), where  # the wheel's code, not the checkout's
    helped = subprocess.run([str(venv / "bin" / "swarm"), "serve", "--help"], env=env, capture_output=True, text=True)
    assert helped.returncode == 0 and "usage: swarm serve" in helped.stdout, helped.stderr
    cmd = json.loads(instruction("CMD")[0])
    cmd[cmd.index("--host") + 1], cmd[cmd.index("--port") + 1] = "127.0.0.1", str(port)
    server = subprocess.Popen(
        [str(venv / "bin" / cmd[0]), *cmd[1:]], env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stdout.read().decode() if server.stdout else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, "the image's CMD did not come up"
                time.sleep(0.3)
        health = json.loads(instruction("HEALTHCHECK")[0].split("CMD", 1)[1])
        probe = [str(venv / "bin" / health[0]), *(a.replace(":8000/", f":{port}/") for a in health[1:])]
        assert subprocess.run(probe, env=env, timeout=30).returncode == 0  # the HEALTHCHECK command passes
        assert (tmp_path / "data" / "swarm.db").is_file()  # SWARM_DATABASE_URL points into the data volume
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_image_install_and_entrypoint(tmp_path: Path) -> None:
    _serve_and_probe(_install_like_the_image(tmp_path, full=False), tmp_path)


@pytest.mark.slow
def test_image_install_with_its_own_dependencies(tmp_path: Path) -> None:
    """As the Dockerfile does it: the wheel's declared dependencies resolved by pip (no dev or local extra)."""
    venv = _install_like_the_image(tmp_path, full=True)
    listed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list"], capture_output=True, text=True)
    assert "pytest" not in listed.stdout and "llama_cpp_python" not in listed.stdout.replace("-", "_")
    _serve_and_probe(venv, tmp_path)
