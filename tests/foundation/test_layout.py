"""Static checks: import direction between layers, Dockerfile and docker-compose.yml (no Docker engine here)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import yaml

from app.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"

# layer -> packages it must never import
FORBIDDEN = {
    "domain": ("app.routing", "app.backends", "app.storage", "app.execution", "app.api", "app.bench", "fastapi"),
    "routing": (
        "app.backends",
        "app.storage",
        "app.execution",
        "app.api",
        "fastapi",
        "httpx",
        "sqlmodel",
        "sqlalchemy",
    ),
    "backends": ("app.storage", "app.execution", "app.api", "app.routing", "sqlmodel"),
    "storage": ("app.routing", "app.backends", "app.execution", "app.api", "fastapi"),
    "core": ("app.backends", "app.storage", "app.execution", "app.api", "app.bench", "app.cli", "fastapi"),
    "execution": ("app.api", "fastapi", "app.cli"),
    "bench": ("app.api", "fastapi", "app.cli"),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


def test_layers_import_only_downwards() -> None:
    violations = []
    for layer, banned in FORBIDDEN.items():
        for path in (APP / layer).rglob("*.py"):
            for name in _imports(path):
                if any(name == b or name.startswith(b + ".") for b in banned):
                    violations.append(f"{path.relative_to(ROOT)} imports {name}")
    assert violations == []


# api helpers with one job each: they know HTTP and the error tree, not routing, execution or storage.
API_LEAVES = ("jsonio.py", "disconnect.py", "relay.py", "errors.py")


def test_api_leaf_modules_stay_leaves() -> None:
    banned = ("app.routing", "app.execution", "app.storage", "app.bench", "app.api.gateway", "app.api.tenancy")
    violations = [
        f"app/api/{leaf} imports {name}"
        for leaf in API_LEAVES
        for name in _imports(APP / "api" / leaf)
        if any(name == b or name.startswith(b + ".") for b in banned)
    ]
    assert violations == []


def test_modules_stay_small() -> None:
    big = [str(p.relative_to(ROOT)) for p in APP.rglob("*.py") if len(p.read_text().splitlines()) > 500]
    assert big == []


def test_dockerfile() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", text, re.M)
    assert re.search(r"^USER (?!root)\S+", text, re.M)
    assert "HEALTHCHECK" in text and "/healthz" in text
    assert re.search(r"^VOLUME", text, re.M)
    assert "swarm" in text.split("CMD", 1)[1]
    # migrations/ and configs/ are packaged into the wheel (test_packaging.py): the build needs them copied
    assert re.search(r"^COPY migrations ", text, re.M) and re.search(r"^COPY configs ", text, re.M)
    assert re.search(r"pip install --no-cache-dir \.(\s|$)", text)


def test_compose() -> None:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = doc["services"]
    # the monitoring services are opt-in (test_monitoring.py); by default only these two start
    assert {name for name, svc in services.items() if "profiles" not in svc} == {"ollama", "router"}
    assert services["ollama"]["image"].startswith("ollama/ollama")
    assert "healthcheck" in services["ollama"]
    router = services["router"]
    assert router["depends_on"]["ollama"]["condition"] == "service_healthy"
    assert router["ports"] == ["${SWARM_BIND:-127.0.0.1}:${SWARM_PUBLISH_PORT:-8000}:8000"]  # test_container.py
    env = router["environment"]
    assert env["SWARM_OLLAMA_BASE_URL"] == "http://ollama:11434"
    fields = set(Settings.model_fields)
    for name in env:
        assert name.startswith("SWARM_")
        assert name.removeprefix("SWARM_").lower().split("__")[0] in fields, name
    assert any(v.endswith(":/data") for v in router["volumes"])
    assert any("/root/.ollama" in v for v in services["ollama"]["volumes"])
