"""deploy/: the scale-out compose override, nginx, Prometheus DNS SD and the dashboard."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


class ComposeLoader(yaml.SafeLoader):
    """Compose's YAML: ``!reset`` (override a value with empty) is a tag of its own."""


ComposeLoader.add_constructor("!reset", lambda loader, node: {"__reset__": True})


def compose(name: str) -> dict[str, Any]:
    return yaml.load((DEPLOY / name).read_text(), Loader=ComposeLoader)


def test_scaled_replicas_publish_no_ports_and_nginx_fronts_both_protocols() -> None:
    base, scale = compose("docker-compose.yml"), compose("docker-compose.scale.yml")
    assert base["services"]["maskserve"]["ports"], "the one-replica file publishes ports"
    assert scale["services"]["maskserve"]["ports"] == {"__reset__": True}
    nginx = scale["services"]["nginx"]
    published = {p.rsplit(":", 1)[-1] for p in nginx["ports"]}
    assert published == {"8000", "50051"}
    assert nginx["depends_on"]["maskserve"]["condition"] == "service_healthy"
    assert not nginx["image"].endswith(":latest")


def test_nginx_balances_http_and_grpc_per_request_over_dns() -> None:
    conf = (DEPLOY / "nginx" / "nginx.conf").read_text()
    assert re.search(r"resolver 127\.0\.0\.11 valid=\d+s", conf)
    assert "proxy_pass http://$backend:8000" in conf
    assert "grpc_pass grpc://$backend:50051" in conf and "listen 50051 http2" in conf


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed here")
def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    conf = (DEPLOY / "nginx" / "nginx.conf").read_text()
    local = tmp_path / "nginx.conf"
    local.write_text(f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\n{conf}")
    done = subprocess.run(
        ["nginx", "-t", "-c", str(local), "-p", str(tmp_path)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_prometheus_finds_every_replica_by_dns() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "maskserve"]
    (sd,) = job["dns_sd_configs"]
    assert sd["names"] == ["maskserve"] and sd["type"] == "A" and sd["port"] == 8000
    assert any(r.get("target_label") == "replica" for r in job["relabel_configs"])


def test_the_dashboard_shows_per_replica_and_total_series() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "maskserve.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert any("by (replica)" in e for e in exprs)
    assert any(e.startswith("sum(rate(maskserve_requests_total") for e in exprs)
