"""Static checks of the monitoring profile: Prometheus and Grafana files parse, the compose profile wires them, and
every metric the Grafana dashboard queries is one the app really exports on /metrics."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app.core.settings import Settings
from app.main import create_app

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "configs" / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "swarm-router.json"
METRIC = re.compile(r"\bswarm_[a-z_]+\b")


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def _dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def _exprs() -> list[str]:
    return [t["expr"] for p in _dashboard()["panels"] for t in p["targets"]]


def test_monitoring_services_are_opt_in_and_mount_files_that_exist() -> None:
    services = _compose()["services"]
    assert {n for n, s in services.items() if "profiles" not in s} == {"ollama", "router"}
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), volume
    grafana_mounts = dict(v.split(":")[:2] for v in services["grafana"]["volumes"])
    provider = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "swarm.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == grafana_mounts["./configs/grafana/dashboards"]
    assert grafana_mounts["./configs/grafana/provisioning"] == "/etc/grafana/provisioning"


def test_prometheus_scrapes_the_router_and_grafana_reads_prometheus() -> None:
    prom = yaml.safe_load((ROOT / "configs" / "prometheus" / "prometheus.yml").read_text())
    (job,) = prom["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    router_port = _compose()["services"]["router"]["ports"][0].split(":")[-1]
    assert job["static_configs"][0]["targets"] == [f"router:{router_port}"]
    (source,) = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"].startswith("http://prometheus:9090")
    panels = _dashboard()["panels"]
    assert len(panels) >= 10 and len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["title"] and panel["fieldConfig"]["defaults"]["unit"], panel["title"]
        assert panel["datasource"]["uid"] == source["uid"]
        assert all(t["datasource"]["uid"] == source["uid"] for t in panel["targets"])


def test_every_dashboard_metric_is_exported(tmp_path: Path) -> None:
    cfg = Settings(
        backend="sim",
        database_url=f"sqlite:///{tmp_path / 'swarm.db'}",
        data_dir=tmp_path / "data",
        runs_dir=tmp_path / "runs",
        agents_file=ROOT / "configs" / "agents_heavy.json",
        gpu_vram_gb=24.0,
    )
    chat = [{"role": "user", "content": "Summarize: the cat sat on the mat."}]
    with TestClient(create_app(cfg)) as client:
        # traffic that touches every collector: a cold load, tokens, an auto-routed call, a proxy error
        assert client.post("/api/chat", json={"model": "phi4:14b", "messages": chat, "stream": False}).is_success
        assert client.post("/v1/chat/completions", json={"model": "auto", "messages": chat}).is_success
        for model in ("llama3.1:8b", "qwen2.5-coder:7b", "phi4:14b"):  # beyond 24 GB together: the scheduler evicts
            assert client.post("/api/chat", json={"model": model, "messages": chat, "stream": False}).is_success
        assert client.post("/api/chat", json={"model": "nope:1b", "messages": chat}).status_code == 404
        text = client.get("/metrics").text
    exported = {s.name for family in text_string_to_metric_families(text) for s in family.samples}
    used = {name for expr in _exprs() for name in METRIC.findall(expr)}
    assert used, "the dashboard queries no swarm_* metric"
    assert sorted(used - exported) == []
    families = {f for f in re.findall(r"^# TYPE (swarm_[a-z_]+) ", text, re.M) if not f.endswith("_created")}
    assert len(families) >= 8
    covered = {f for f in families if any(u == f or u.startswith(f + "_") for u in used)}
    assert covered == families  # and every metric the app exports has a panel
