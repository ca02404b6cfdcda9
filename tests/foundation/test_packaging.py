"""A plain (non-editable) install works: the wheel carries migrations/ and configs/, and the code finds them."""

from __future__ import annotations

import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_package_list_matches_the_tree() -> None:
    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "app").rglob("__init__.py")}
    assert declared == found | {"app.migrations", "app.migrations.versions", "app.configs"}


def test_wheel_install_finds_migrations_and_configs(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), "."]
    subprocess.run(build, cwd=ROOT, check=True, capture_output=True, timeout=300)
    (wheel,) = dist.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"app/migrations/env.py", "app/migrations/script.py.mako", "app/configs/agents_heavy.json"} <= names
    # the dashboard's static files ship as package data (no build step at run time)
    shipped = {p.relative_to(ROOT).as_posix() for p in (ROOT / "app" / "ui" / "static").iterdir()}
    assert shipped and shipped <= names
    assert any(n.startswith("app/migrations/versions/0001") for n in names)
    target = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)]
    subprocess.run(install, check=True, capture_output=True, timeout=300)
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "import app\n"
        "from app.core.paths import resource_dir\n"
        "from app.core.settings import Settings\n"
        "from app.storage import db\n"
        "assert app.__file__.startswith(sys.argv[1]), app.__file__\n"
        "engine = db.make_engine('sqlite:///' + sys.argv[2])\n"
        "db.upgrade(engine)\n"
        "from app.api.routes.ui import static_dir\n"
        "assert (static_dir() / 'index.html').is_file() and str(static_dir()).startswith(sys.argv[1])\n"
        "print(resource_dir('migrations')); print(Settings().default_agents_file())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, str(target), str(tmp_path / "swarm.db")],
        cwd=tmp_path,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout.split()
    assert out == [str(target / "app" / "migrations"), str(target / "app" / "configs" / "agents_heavy.json")]
    assert (tmp_path / "swarm.db").stat().st_size > 0
