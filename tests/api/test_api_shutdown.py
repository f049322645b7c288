"""``maskserve serve`` as a real process: SIGTERM under load drains and exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from api_harness import MODEL, eventually, free_port, metric

IN_FLIGHT = 4


def _ready(url: str, process: subprocess.Popen) -> bool:
    if process.poll() is not None:
        raise AssertionError(f"maskserve serve exited early with {process.returncode}")
    try:
        return httpx.get(url + "/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


@pytest.mark.slow
def test_sigterm_under_load_drains_and_exits_zero(
    repository: Path, png: bytes, tmp_path: Path
) -> None:
    http_port, grpc_port = free_port(), free_port()
    command = [
        sys.executable, "-m", "maskserve.cli", "serve",
        "--model-repository", str(repository), "--models", MODEL, "--devices", "cpu",
        "--host", "127.0.0.1", "--http-port", str(http_port), "--grpc-port", str(grpc_port),
        "--max-batch-size", "8", "--max-queue-delay-ms", "3000", "--log-format", "json",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("MASKSERVE_")}
    log = (tmp_path / "serve.log").open("w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{http_port}"
    try:
        eventually(lambda: _ready(url, process), "the server to become ready", timeout=300)
        with (
            httpx.Client(base_url=url, timeout=60) as client,
            ThreadPoolExecutor(IN_FLIGHT) as pool,
        ):

            def segment() -> httpx.Response:
                return client.post(
                    f"/v1/models/{MODEL}/segment",
                    content=png,
                    headers={"content-type": "image/png"},
                )

            running = [pool.submit(segment) for _ in range(IN_FLIGHT)]
            eventually(
                lambda: metric(url, "maskserve_inflight_requests", model=MODEL) == IN_FLIGHT,
                "the requests to be in flight",
            )
            process.send_signal(signal.SIGTERM)
            eventually(lambda: client.get("/readyz").status_code == 503, "readyz to turn 503")
            refused = segment()
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "model_not_ready"
            assert [f.result().status_code for f in running] == [200] * IN_FLIGHT
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()
        print((tmp_path / "serve.log").read_text()[-4000:])  # shown when the test fails
    assert '"message": "shutdown requested: draining"' in (tmp_path / "serve.log").read_text()
