"""``maskserve-client bench`` as a user runs it, against a real maskserve on 127.0.0.1.

The command runs in a subprocess through the console entry point (``os._exit`` at the
end), so its exit code is checked as a shell sees it; the server is the protocol tests'
harness (``tests/api/api_harness.py``), the real service with the shipped model.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.slow

MODEL = "yolact_shapes"
RUN_TIMEOUT_S = 300  # a safety net only: a run here takes seconds
#: Small generated images, so that a loaded CPU still answers quickly.
IMAGES = ["--generate", "2", "--size", "160x120", "--no-progress"]
OK_LABEL = {"rest": "200", "grpc": "OK", "grpc-stream": "OK"}
REFUSED_LABEL = {"rest": "404", "grpc": "NOT_FOUND", "grpc-stream": "NOT_FOUND"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, api_harness: ModuleType) -> Iterator[Any]:
    from maskserve.models.registry import ZOO_DIR

    root = tmp_path_factory.mktemp("bench_repo")
    shipped = ZOO_DIR / MODEL
    if (shipped / "model.toml").is_file():
        shutil.copytree(shipped, root / MODEL)
    else:
        import torch

        from maskserve.models.training.train_yolact import shapes_config, write_model
        from maskserve.models.yolact.network import Yolact

        torch.manual_seed(0)
        write_model(Yolact(shapes_config()), root / MODEL)
    with api_harness.running_server(api_harness.server_settings(root)) as running:
        yield running


def where(live: Any, protocol: str) -> list[str]:
    if protocol == "rest":
        return ["--url", live.http_url]
    stream = ["--stream"] if protocol == "grpc-stream" else []
    return ["--target", live.grpc_target, *stream]


def bench(*argv: str) -> subprocess.CompletedProcess[str]:
    """The console entry (``maskserve_client.cli:entry``) in a fresh interpreter."""
    return subprocess.run(
        [sys.executable, "-m", "maskserve_client.cli", "bench", *argv],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )


@pytest.mark.parametrize("protocol", ["rest", "grpc", "grpc-stream"])
def test_closed_and_open_loop_answer_exactly_the_requested_count(
    live: Any, protocol: str, tmp_path: Path
) -> None:
    out = tmp_path / "bench.json"
    table = tmp_path / "bench.csv"
    done = bench(
        *where(live, protocol),
        *["--concurrency", "1,3", "--rate", "20", "--requests", "5", "--warmup", "2"],
        *["--json", str(out), "--csv", str(table), *IMAGES],
    )
    assert done.returncode == 0, done.stderr
    levels = json.loads(out.read_text())["levels"]
    assert [(s["mode"], s["concurrency"], s["rate"]) for s in levels] == [
        ("closed", 1, None),
        ("closed", 3, None),
        ("open", None, 20.0),
    ]
    for level in levels:
        assert (level["protocol"], level["requests"], level["ok"]) == (protocol, 5, 5)
        assert level["statuses"] == {OK_LABEL[protocol]: 5}
        assert level["throughput"] > 0 and level["first_error"] is None
        latency = level["latency_ms"]
        assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
        server = level["server_ms"]  # means of the timings every answer carried
        assert server["inference"] > 0 and server["queue"] >= 0 and server["postprocess"] > 0
        assert server["total"] >= server["inference"]
    rows = list(csv.DictReader(table.read_text().splitlines()))
    assert [int(r["requests"]) for r in rows] == [5, 5, 5]
    assert [r["statuses"] for r in rows] == [f"{OK_LABEL[protocol]}:5"] * 3
    assert f"{protocol} " in done.stdout and "rate 20/s" in done.stdout


@pytest.mark.parametrize("protocol", ["rest", "grpc", "grpc-stream"])
def test_refused_requests_are_counted_by_status(live: Any, protocol: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    done = bench(
        *where(live, protocol),
        *["--model", "no_such_model", "--concurrency", "2", "--requests", "4", "--warmup", "1"],
        *["--json", str(out), *IMAGES],
    )
    assert done.returncode == 1, done.stderr  # some requests failed: 1, not a crash (134)
    assert "FATAL" not in done.stderr and "Traceback" not in done.stderr
    (level,) = json.loads(out.read_text())["levels"]
    assert (level["requests"], level["ok"]) == (4, 0)
    assert level["statuses"] == {REFUSED_LABEL[protocol]: 4}
    assert level["first_error"].startswith("model_not_found")
    assert level["latency_ms"]["p50"] is None  # latency is over successful answers
    assert "model_not_found" in done.stdout


def test_unreachable_server_exits_1_with_a_message() -> None:
    import socket

    with socket.socket() as sock:  # bound, never listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        done = bench("--target", f"127.0.0.1:{port}", "--wait", "0.5", *IMAGES)
    assert done.returncode == 1
    assert f"no answer from 127.0.0.1:{port}" in done.stderr and "FATAL" not in done.stderr
