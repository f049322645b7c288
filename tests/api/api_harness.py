"""A real maskserve (REST + gRPC, the real service) on 127.0.0.1 in a background thread.

The server runs on its own event loop, exactly as ``maskserve serve`` composes it; tests
talk to it over sockets with ordinary clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from maskserve.app import MaskserveServer
from maskserve.models.registry import ZOO_DIR
from maskserve.settings import Settings

START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
MODEL = "yolact_shapes"

# Limits the protocol tests' server runs with (small, so tests can exceed them cheaply).
BODY_LIMIT = 256 * 1024
PIXEL_LIMIT = 1_000_000
GRPC_MESSAGE_LIMIT = 1024 * 1024
SHIPPED = ZOO_DIR / MODEL
HAS_SHIPPED = (SHIPPED / "model.toml").is_file()
needs_shipped_model = pytest.mark.skipif(
    not HAS_SHIPPED,
    reason=f"needs the shipped model {SHIPPED}/model.toml (random weights detect nothing)",
)


@dataclass
class RunningServer:
    server: MaskserveServer
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    outcome: dict[str, Any] = field(default_factory=dict)

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.server.grpc_port}"

    def call(self, fn: Any, *args: Any) -> None:
        """Run ``fn(*args)`` on the server's loop."""
        self.loop.call_soon_threadsafe(fn, *args)


def server_settings(repository: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "model_repository": repository,
        "models": [MODEL],
        "devices": ["cpu"],
        "http_host": "127.0.0.1",
        "http_port": 0,
        "grpc_port": 0,
        "drain_grace_s": 10.0,
        "log_level": "info",
    }
    values.update(overrides)
    return Settings(**values)


@contextlib.contextmanager
def running_server(settings: Settings) -> Iterator[RunningServer]:
    """Start, wait until ready (or fail), yield; then stop and require exit code 0."""
    box: dict[str, Any] = {}
    settled = threading.Event()

    async def main() -> None:
        server = MaskserveServer(settings)
        box["server"], box["loop"] = server, asyncio.get_running_loop()
        try:
            await server.start()
            ready = asyncio.create_task(server.ready.wait())
            ready.add_done_callback(lambda _: settled.set())
            box["code"] = await server.wait()
            ready.cancel()
        finally:
            settled.set()

    def thread_main() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            box["error"] = exc
            settled.set()

    thread = threading.Thread(target=thread_main, name="maskserve-test-server", daemon=True)
    thread.start()
    if not settled.wait(START_TIMEOUT_S):
        raise TimeoutError("the test server did not become ready")
    if "error" in box or not box["server"].ready.is_set():
        raise RuntimeError(f"the test server failed to start: {box.get('error')!r}")
    running = RunningServer(box["server"], box["loop"], thread, box)
    try:
        yield running
    finally:
        if thread.is_alive() and not running.server.stopping:
            running.call(running.server.request_stop)
            thread.join(STOP_TIMEOUT_S)
    assert not thread.is_alive(), "the test server did not stop"
    assert "error" not in box, f"the test server crashed: {box['error']!r}"
    assert box.get("code") == 0, f"the test server exited with {box.get('code')}"


def encode(pixels: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


def free_port() -> int:
    """A port free right now (for a server started in another process)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def metric_samples(http_url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` parsed by prometheus_client: {(sample name, sorted labels): value}."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    response = httpx.get(http_url + "/metrics", timeout=30)
    response.raise_for_status()
    values = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


def metric(http_url: str, name: str, **labels: str) -> float:
    return metric_samples(http_url).get((name, tuple(sorted(labels.items()))), 0.0)


def eventually(condition: Any, what: str, timeout: float = 30.0) -> None:
    """Gate on an observable condition (polled), failing after ``timeout`` seconds."""
    import time

    end = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
