"""Every bad CLI input exits 2 with one line `swarm <cmd>: error: <flag>: <problem>` on stderr, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli import main
from app.core.errors import ValidationFailed
from app.storage import db
from app.storage.export import parse_since
from app.storage.repo import Repo

BENCH = ["bench", "--dry_run", "--benchmark", "workflowbench"]
SWEEP = ["experiment", "--dry_run", "--suite", "workflow_sweep"]
RUN = ["run", "--dry_run", "--query", "What is 2+2?"]


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWARM_DATABASE_URL", f"sqlite:///{tmp_path / 'cli.db'}")
    monkeypatch.setenv("SWARM_RUNS_DIR", str(tmp_path / "runs"))
    for name in ("SWARM_CONFIG_FILE", "SWARM_CORS_ORIGINS", "SWARM_DEBUG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    Path("a_file").write_text("x\n")
    Path("a_dir").mkdir()
    Path("binary.dat").write_bytes(b"\xff\xfe\x00\x81binary")
    Path("list.json").write_text("[]")
    Path("bad_agents.json").write_text('{"agents": 5}')
    Path("not_a_db").write_text("this is not an SQLite database, just some text " * 4)


def fail(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run `swarm argv`, assert exit 2 and one clean error line; return it."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"swarm {argv[0]}") and ": error: " in lines[0], err
    return lines[0]


CASES = [
    # 1. flags validated at parse time (BenchConfig / SweepSpec would raise a ValidationError)
    ([*BENCH, "--limit", "0"], "--limit"),
    ([*BENCH, "--limit", "-5"], "--limit"),
    ([*BENCH, "--limit", "99999999999"], "--limit"),
    ([*BENCH, "--block_size", "0"], "--block_size"),
    ([*BENCH, "--sim_device_gb", "-1"], "--sim_device_gb"),
    ([*BENCH, "--seed", "-3"], "--seed"),
    ([*BENCH, "--gpu_vram_gb", "5000"], "--gpu_vram_gb"),  # BenchConfig's own bound, mapped to the flag
    ([*SWEEP, "--limit", "0"], "--limit"),
    ([*SWEEP, "--lambda_switches", ""], "--lambda_switches"),
    ([*SWEEP, "--lambda_switches=-1"], "--lambda_switches"),
    ([*SWEEP, "--lambda_switches", "nan"], "--lambda_switches"),
    ([*SWEEP, "--gpu_vrams", "0"], "--gpu_vrams"),
    ([*SWEEP, "--horizons=-1"], "--horizons"),
    ([*SWEEP, "--horizons", "100"], "--horizons"),
    ([*SWEEP, "--horizons", "1.5"], "--horizons"),
    # 2. files and paths
    ([*RUN, "--estimator_in", "list.json"], "--estimator_in"),
    ([*BENCH, "--estimator_in", "list.json"], "--estimator_in"),
    ([*RUN, "--estimator_out", "/nonexistent/dir/x.json"], "--estimator_out"),
    ([*RUN, "--estimator_out", "a_dir"], "--estimator_out"),
    ([*RUN, "--runs_dir", "a_file"], "--runs_dir"),
    ([*RUN, "--runs_dir", "a_file/sub"], "--runs_dir"),
    ([*RUN, "--job_id_prefix", "x y/"], "--job_id_prefix"),
    ([*RUN, "--run_id", "../../etc"], "--run_id"),
    ([*RUN, "--run_id", ".."], "--run_id"),
    ([*RUN, "--queries_file", "binary.dat"], "--queries_file"),
    ([*SWEEP, "--runs_dir", "a_file"], "--runs_dir"),
    ([*BENCH, "--output_dir", "a_file"], "--output_dir"),
    (["write-agents", "--preset", "fast", "--out", "a_dir"], "--out"),
    (["write-agents", "--preset", "fast", "--out", ""], "--out"),
    (["export", "--out", "a_dir"], "--out"),
    (["import", "binary.dat"], "not a UTF-8 text file"),
    (["import", "a_dir"], "a_dir"),
    # 4. databases
    (["db", "upgrade", "--database_url", "notaurl"], "--database_url"),
    (["db", "upgrade", "--database_url", "sqlite:///not_a_db"], "--database_url"),
    ([*RUN, "--database_url", "sqlite:///not_a_db"], "--database_url"),
    ([*RUN, "--database_url", "postgresql://u@127.0.0.1:1/x"], "--database_url"),
    # 5. servers and numbers (all fail before anything listens)
    (["serve", "--log_level", "bogus"], "--log_level"),
    (["sim-ollama", "--log_level", "bogus"], "--log_level"),
    (["serve", "--port", "70000"], "--port"),
    (["serve", "--port", "-1"], "--port"),
    (["serve", "--port", "0"], "--port"),
    (["sim-ollama", "--port", "70000"], "--port"),
    (["serve", "--host", ""], "--host"),
    (["sim-ollama", "--host", ""], "--host"),
    (["sim-ollama", "--time_scale", "-1"], "--time_scale"),
    ([*RUN, "--gpu_vram_gb", "inf"], "--gpu_vram_gb"),
    ([*RUN, "--lambda_switch", "nan"], "--lambda_switch"),
    (["serve", "--dry_run", "--agents_file", "bad_agents.json"], "--agents_file"),
    (["sim-ollama", "--agents_file", "bad_agents.json"], "--agents_file"),
    ([*RUN, "--agents_file", "bad_agents.json"], "--agents_file"),
    # 7. export
    (["export", "--out", "-", "--since", "nan"], "--since"),
    (["export", "--out", "-", "--since", "1e400"], "--since"),
]


@pytest.mark.parametrize(("argv", "needle"), CASES, ids=[f"{a[0]} {a[-2]} {a[-1]}" for a, _ in CASES])
def test_bad_input_is_one_line(argv: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    line = fail(argv, capsys)
    assert needle in line


def test_run_id_traversal_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fail([*RUN, "--runs_dir", "runs", "--run_id", "../escaped"], capsys)
    assert not Path("escaped").exists() and not Path("runs").exists()


def test_serve_port_out_of_range_never_listens(capsys: pytest.CaptureFixture[str]) -> None:
    # 70000 used to wrap around to 4464; now argparse rejects it before uvicorn is imported.
    assert "70000" in fail(["serve", "--dry_run", "--port", "70000"], capsys)


@pytest.mark.parametrize(
    ("env", "value", "needle"),
    [
        ("SWARM_CONFIG_FILE", "bad.toml", "SWARM_CONFIG_FILE"),
        ("SWARM_CONFIG_FILE", "missing.toml", "SWARM_CONFIG_FILE: file not found"),
        ("SWARM_CORS_ORIGINS", "notjson", "SWARM_CORS_ORIGINS"),
        ("SWARM_GPU_VRAM_GB", "-3", "SWARM_GPU_VRAM_GB"),
    ],
)
def test_bad_environment_is_one_line(
    env: str, value: str, needle: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    Path("bad.toml").write_text("not = [toml\n")
    monkeypatch.setenv(env, value)
    assert needle in fail(RUN, capsys)


def test_unexpected_error_is_one_line_unless_debugging(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import app.cli.data as data

    def boom(_args: object) -> int:
        raise RuntimeError("something broke\nsecond line")

    monkeypatch.setattr(data, "cmd_upgrade", boom)
    line = fail(["db", "upgrade"], capsys)
    assert "RuntimeError: something broke second line" in line and "SWARM_DEBUG=1" in line
    monkeypatch.setenv("SWARM_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["db", "upgrade"])


def test_last_resort_maps_pydantic_and_os_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import app.cli.data as data
    from app.bench.runner import BenchConfig

    def invalid(_args: object) -> int:
        BenchConfig(benchmarks=["workflowbench"], block_size=0)
        return 0

    monkeypatch.setattr(data, "cmd_upgrade", invalid)
    assert "--block_size: Input should be greater than or equal to 1" in fail(["db", "upgrade"], capsys)

    def missing(_args: object) -> int:
        open("no/such/file.txt", encoding="utf-8").close()
        return 0

    monkeypatch.setattr(data, "cmd_upgrade", missing)
    line = fail(["db", "upgrade"], capsys)
    assert "no/such/file.txt" in line and "No such file" in line


def test_parse_since_rejects_non_finite() -> None:
    for bad in ("nan", "inf", "-inf", "1e400"):
        with pytest.raises(ValidationFailed, match="since: must be a finite timestamp"):
            parse_since(bad)
    assert parse_since("1970-01-01T00:00:10Z") == 10.0


# 3. swarm import: validated before anything is written; re-importing skips what is already stored


def _events(url: str) -> list[dict[str, object]]:
    repo = Repo(db.make_engine(url))
    return [{"ts": e.ts, "event_type": e.event_type, "payload": e.payload} for e in repo.iter_events("default")]


GOOD = [
    {"ts": 1, "event_type": "a", "payload": {"k": [1, 2]}, "job_id": "j1"},
    {"ts": 2.5, "event_type": "b", "payload": {}},
]


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"ts": 3, "event_type": "a", "payload": {}, "tenant_id": "ghost"}', "line 3: tenant 'ghost' does not exist"),
        ('{"ts": NaN, "event_type": "a", "payload": {}}', "line 3: 'ts' must be a finite number"),
        ('{"ts": 1e400, "event_type": "a", "payload": {}}', "line 3: 'ts' must be a finite number"),
        ('{"ts": true, "event_type": "a", "payload": {}}', "line 3: 'ts' must be a finite number"),
        ('{"ts": 3, "event_type": "", "payload": {}}', "line 3: 'event_type' must be a non-empty string"),
        ('{"ts": 3, "event_type": 5, "payload": {}}', "line 3: 'event_type' must be a non-empty string"),
        ('{"ts": 3, "event_type": "' + "x" * 41 + '", "payload": {}}', "line 3: 'event_type'"),
        ('{"ts": 3, "event_type": "a", "payload": {}, "job_id": ["j"]}', "line 3: 'job_id'"),
    ],
)
def test_import_bad_file_writes_nothing(
    bad_line: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'imp.db'}"
    src = tmp_path / "events.jsonl"
    src.write_text("".join(json.dumps(e) + "\n" for e in GOOD) + bad_line + "\n")
    line = fail(["import", str(src), "--database_url", url], capsys)
    assert message in line
    assert _events(url) == []  # all or nothing


def test_import_twice_skips_duplicates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'imp.db'}"
    src = tmp_path / "events.jsonl"
    src.write_text("".join(json.dumps(e) + "\n" for e in GOOD))
    assert main(["import", str(src), "--database_url", url]) == 0
    assert "imported 2, skipped 0 duplicates" in capsys.readouterr().out
    assert main(["import", str(src), "--database_url", url]) == 0
    assert "imported 0, skipped 2 duplicates" in capsys.readouterr().out
    assert len(_events(url)) == 2
    # a file with one new event next to the old ones adds just the new one
    src.write_text(src.read_text() + json.dumps({"ts": 9, "event_type": "c", "payload": {}}) + "\n")
    assert main(["import", str(src), "--database_url", url]) == 0
    assert "imported 1, skipped 2 duplicates" in capsys.readouterr().out
    assert len(_events(url)) == 3


def test_import_unknown_tenant_can_be_re_owned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'imp.db'}"
    src = tmp_path / "events.jsonl"
    src.write_text(json.dumps({"ts": 1, "event_type": "a", "payload": {}, "tenant_id": "ghost"}) + "\n")
    assert main(["import", str(src), "--database_url", url, "--tenant", "default"]) == 0
    assert "imported 1" in capsys.readouterr().out
    assert len(_events(url)) == 1


def test_not_a_database_is_left_alone(capsys: pytest.CaptureFixture[str]) -> None:
    before = Path("not_a_db").read_bytes()
    fail(["db", "upgrade", "--database_url", "sqlite:///not_a_db"], capsys)
    assert Path("not_a_db").read_bytes() == before


@pytest.mark.parametrize(("level", "access_log"), [("info", True), ("warning", False)])
def test_serve_passes_its_settings_to_uvicorn(monkeypatch: pytest.MonkeyPatch, level: str, access_log: bool) -> None:
    import uvicorn

    seen: dict[str, object] = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(kw))
    assert main(["serve", "--dry_run", "--port", "8123", "--log_level", level]) == 0
    assert seen["port"] == 8123 and seen["log_level"] == level and seen["access_log"] is access_log
    assert seen["timeout_graceful_shutdown"] == 10
