"""The scaled compose stack as a user runs it, driven from tests and benchmarks.

``docker compose -f deploy/docker-compose.yml -f deploy/docker-compose.scale.yml`` with the
variables a user may set (image tag, published ports, ``MASKSERVE_*``), under a project
name of its own so it never touches a user's ``maskserve`` stack. Per-replica facts (the
request counters) are read inside each replica with ``docker exec``: the replicas publish
no ports, and the tests send traffic only to 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILES = (
    ROOT / "deploy" / "docker-compose.yml",
    ROOT / "deploy" / "docker-compose.scale.yml",
)
IMAGE = "maskserve:ci"

# read inside a replica: its own request counters, as the Prometheus text format
_READ_METRICS = (
    "import urllib.request; print(urllib.request.urlopen("
    "'http://127.0.0.1:8000/metrics', timeout=10).read().decode())"
)


def engine_answers() -> bool:
    """True when a Docker engine answers ``docker info`` (and compose v2 is installed)."""
    if shutil.which("docker") is None:
        return False
    try:
        info = subprocess.run(["docker", "info"], capture_output=True, timeout=30, check=False)
        compose = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        return False
    return info.returncode == 0 and compose.returncode == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def remove_leftovers(prefix: str) -> list[str]:
    """Remove containers and networks of earlier projects named ``prefix*`` (a run that was
    killed before its teardown; dockerd restarts such containers when it starts again)."""
    label = '{{.Label "com.docker.compose.project"}}'
    out = subprocess.run(
        ["docker", "ps", "-a", "--format", f"{label} {{{{.ID}}}}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    ids = [line.split()[1] for line in out.splitlines() if line.startswith(prefix)]
    if ids:
        subprocess.run(
            ["docker", "rm", "-f", "-v", *ids], capture_output=True, check=True, timeout=300
        )
    networks = subprocess.run(
        ["docker", "network", "ls", "--format", "{{.Name}}"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout.split()
    for network in (n for n in networks if n.startswith(prefix)):
        subprocess.run(
            ["docker", "network", "rm", network], capture_output=True, check=False, timeout=120
        )
    return ids


@dataclass
class Stack:
    """One compose project of the scaled stack."""

    project: str
    env: dict[str, str] = field(default_factory=dict)
    files: Sequence[Path] = COMPOSE_FILES

    @classmethod
    def create(cls, project: str, **settings: str) -> Stack:
        """A stack on free loopback ports; ``settings`` are extra compose variables."""
        env = {
            "MASKSERVE_IMAGE": IMAGE,
            "BIND_ADDRESS": "127.0.0.1",
            "HTTP_PORT": str(free_port()),
            "GRPC_PORT": str(free_port()),
            "PROMETHEUS_PORT": str(free_port()),
            "GRAFANA_PORT": str(free_port()),
            **settings,
        }
        return cls(project=project, env=env)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.env['HTTP_PORT']}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.env['GRPC_PORT']}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.env['PROMETHEUS_PORT']}"

    def compose(self, *args: str, timeout: float = 900) -> str:
        command = ["docker", "compose", "-p", self.project]
        for path in self.files:
            command += ["-f", str(path)]
        done = subprocess.run(
            [*command, *args],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"docker compose {' '.join(args)} failed ({done.returncode}):\n"
                f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
            )
        return done.stdout

    def build(self, **args: str) -> None:
        """Build the maskserve image through the compose file (its build section)."""
        self.env.update(args)
        self.compose("build", "maskserve", timeout=3600)

    def up(
        self, replicas: int, services: Sequence[str] = ("maskserve", "nginx", "prometheus")
    ) -> None:
        """Start (or rescale) and wait until every health check passes."""
        self.compose(
            "up",
            "-d",
            "--no-build",
            "--wait",
            "--wait-timeout",
            "600",
            "--scale",
            f"maskserve={replicas}",
            *services,
        )

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", "--timeout", "45", timeout=600)

    def logs(self) -> str:
        try:
            return self.compose("logs", "--no-color", "--tail", "60", timeout=120)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            return f"(no logs: {exc})"

    def replicas(self) -> list[str]:
        """Running maskserve containers, by name, in replica order."""
        out = self.compose("ps", "--format", "json", "maskserve")
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        if len(rows) == 1 and isinstance(rows[0], list):  # older compose: one JSON array
            rows = rows[0]
        running = [r for r in rows if r.get("State") == "running"]
        return [r["Name"] for r in sorted(running, key=lambda r: int(r.get("Number", 0)))]

    def served(self, container: str) -> dict[str, float]:
        """A replica's ``maskserve_requests_total`` by ``protocol/status``, read inside it."""
        text = subprocess.run(
            ["docker", "exec", container, "python3", "-c", _READ_METRICS],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        counts: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            if family.name != "maskserve_requests":
                continue
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    key = f"{sample.labels['protocol']}/{sample.labels['status']}"
                    counts[key] = counts.get(key, 0.0) + sample.value
        return counts

    def stop_replica(self, container: str, grace_s: int = 40) -> int:
        """``docker stop``: SIGTERM, the drain, SIGKILL after ``grace_s``; the exit code."""
        subprocess.run(
            ["docker", "stop", "-t", str(grace_s), container],
            check=True,
            capture_output=True,
            timeout=grace_s + 60,
        )
        done = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.ExitCode}}", container],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        return int(done.stdout.strip())

    def prometheus(self, path: str, **params: str) -> Any:
        """GET a Prometheus HTTP API path; its ``data``."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.prometheus_url}{path}?{query}", timeout=30) as r:
            body = json.load(r)
        if body.get("status") != "success":
            raise RuntimeError(f"Prometheus {path}: {body}")
        return body["data"]

    def wait_for_series(self, query: str, count: int, timeout_s: float = 180) -> list[Any]:
        """Poll an instant query until it returns ``count`` series (scrapes every 5 s)."""
        deadline = time.monotonic() + timeout_s
        result: list[Any] = []
        while time.monotonic() < deadline:
            result = self.prometheus("/api/v1/query", query=query)["result"]
            if len(result) >= count:
                return result
            time.sleep(1.0)  # polling an external scraper: no event to wait on
        raise AssertionError(f"{query!r} returned {len(result)} series, not {count}: {result}")
