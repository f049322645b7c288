"""The moving parts of ``bench_serving.py``: a ``maskserve serve`` subprocess, CPU accounting
from ``/proc``, and a closed-loop asyncio load generator for REST and gRPC.

The server runs in its own process so that its CPU time can be read apart from the load
generator's (``/proc/<pid>/stat`` counts every thread of the server), and the load
generator is one asyncio thread with pre-encoded requests, so it costs the server as
little CPU as a client can. REST goes through aiohttp rather than httpx: on this machine
an httpx round trip to ``/healthz`` took 3.2 ms at p50 against aiohttp's 0.9 ms (a raw
socket: 0.5 ms), time that would otherwise be counted as the server's.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp
import grpc
import grpc.aio
import httpx
from maskserve_client.gen import segment_pb2 as pb
from maskserve_client.gen.segment_pb2_grpc import SegmentationStub
from maskserve_client.grpc import CHANNEL_OPTIONS
from prometheus_client.parser import text_string_to_metric_families

READY_TIMEOUT_S = 300.0
STOP_TIMEOUT_S = 60.0
REQUEST_TIMEOUT_S = 120.0
TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

# a send: request number → the server's timings (seconds by stage), or a failure's description
Send = Callable[[int], Awaitable[dict[str, float] | str]]


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class CpuSnapshot:
    """Wall clock and CPU seconds so far: the server process, this process, the machine."""

    wall: float
    server: float
    client: float
    machine: float

    @classmethod
    def take(cls, server_pid: int) -> CpuSnapshot:
        times = os.times()
        return cls(
            wall=time.perf_counter(),
            server=_process_cpu(server_pid),
            client=times.user + times.system,
            machine=_machine_busy(),
        )


def _process_cpu(pid: int) -> float:
    """utime + stime of every thread of ``pid`` (NaN where /proc is unavailable)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / TICK


def _machine_busy() -> float:
    """CPU seconds all cores spent not idle since boot (NaN where /proc is unavailable)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return float("nan")
    return (sum(values[:8]) - values[3] - values[4]) / TICK


@dataclass
class Window:
    """The measured part of one load run."""

    latencies: list[float] = field(default_factory=list)
    timings: list[dict[str, float]] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None
    start: CpuSnapshot | None = None
    end: CpuSnapshot | None = None

    @property
    def seconds(self) -> float:
        assert self.start is not None and self.end is not None
        return self.end.wall - self.start.wall

    def cores(self, what: str) -> float:
        """Average cores used in the window by ``server``, ``client``, ``machine`` or ``other``."""
        assert self.start is not None and self.end is not None
        if what == "other":
            return self.cores("machine") - self.cores("server") - self.cores("client")
        return (getattr(self.end, what) - getattr(self.start, what)) / self.seconds


async def drive(
    send: Send,
    concurrency: int,
    warmup: int,
    count: int,
    duration: float | None,
    server_pid: int,
) -> Window:
    """``concurrency`` closed loops send requests back to back; the window opens when the
    ``warmup``-th request completes and closes at the ``warmup + count``-th completion (or
    after ``duration`` seconds), with the load kept at ``concurrency`` all the while."""
    window = Window()
    done = 0
    issued = 0
    stopping = False

    async def loop() -> None:
        nonlocal done, issued, stopping
        while not stopping:
            number = issued
            issued += 1
            began = time.perf_counter()
            outcome = await send(number)
            finished = time.perf_counter()
            done += 1
            if stopping or done <= warmup:
                if done == warmup:
                    window.start = CpuSnapshot.take(server_pid)
                continue
            window.latencies.append(finished - began)
            if isinstance(outcome, str):
                window.errors += 1
                window.first_error = window.first_error or outcome
            else:
                window.timings.append(outcome)
            assert window.start is not None
            late = duration is not None and finished - window.start.wall >= duration
            if done >= warmup + count or late:
                window.end = CpuSnapshot.take(server_pid)
                stopping = True

    if warmup == 0:
        window.start = CpuSnapshot.take(server_pid)
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return window


def rest_sender(client: aiohttp.ClientSession, model: str, images: list[tuple[bytes, str]]) -> Send:
    path = f"/v1/models/{model}/segment"

    async def send(number: int) -> dict[str, float] | str:
        data, content_type = images[number % len(images)]
        try:
            async with client.post(
                path, data=data, headers={"content-type": content_type}
            ) as reply:
                if reply.status != 200:
                    return f"HTTP {reply.status}: {await reply.text()}"
                body = await reply.json()
        except aiohttp.ClientError as exc:
            return f"{type(exc).__name__}: {exc}"
        return dict(body.get("timings", {}))

    return send


def grpc_sender(stub: SegmentationStub, model: str, images: list[tuple[bytes, str]]) -> Send:
    requests = [pb.SegmentRequest(model=model, image=data) for data, _ in images]

    async def send(number: int) -> dict[str, float] | str:
        try:
            reply = await stub.Segment(requests[number % len(requests)], timeout=REQUEST_TIMEOUT_S)
        except grpc.RpcError as exc:
            return f"gRPC {exc.code().name}: {exc.details()}"  # type: ignore[attr-defined]
        t = reply.timings
        return {
            "queue": t.queue_seconds,
            "inference": t.inference_seconds,
            "postprocess": t.postprocess_seconds,
            "total": t.total_seconds,
        }

    return send


class Clients:
    """One keep-alive REST client and one gRPC channel to a running server."""

    def __init__(self, http_port: int, grpc_port: int, connections: int) -> None:
        self.http = aiohttp.ClientSession(
            f"http://127.0.0.1:{http_port}",
            connector=aiohttp.TCPConnector(limit=connections),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S),
        )
        self.channel = grpc.aio.insecure_channel(
            f"127.0.0.1:{grpc_port}", options=list(CHANNEL_OPTIONS)
        )
        self.stub = SegmentationStub(self.channel)

    def sender(self, protocol: str, model: str, images: list[tuple[bytes, str]]) -> Send:
        if protocol == "rest":
            return rest_sender(self.http, model, images)
        return grpc_sender(self.stub, model, images)

    async def batch_totals(self, model: str) -> tuple[float, float]:
        """(sum, count) of the server's batch-size histogram for ``model``."""
        async with self.http.get("/metrics") as reply:
            text = await reply.text()
        totals = {"_sum": 0.0, "_count": 0.0}
        for family in text_string_to_metric_families(text):
            if family.name != "maskserve_batch_size":
                continue
            for sample in family.samples:
                suffix = sample.name.removeprefix(family.name)
                if suffix in totals and sample.labels.get("model") == model:
                    totals[suffix] += sample.value
        return totals["_sum"], totals["_count"]

    async def close(self) -> None:
        await self.http.close()
        await self.channel.close()


class ServerProcess:
    """``maskserve serve`` on 127.0.0.1 free ports, from start to ``/readyz`` to SIGTERM."""

    ready_path = "/readyz"

    def __init__(
        self, flags: dict[str, Any], log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.http_port = free_port()
        self.grpc_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.command = [sys.executable, "-m", "maskserve.cli", "serve", "--host", "127.0.0.1"]
        flags = {**flags, "http-port": self.http_port, "grpc-port": self.grpc_port}
        for name, value in flags.items():
            self.command += [f"--{name}", str(value)]
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def __enter__(self) -> Self:
        with self.log_path.open("wb") as log:
            # its own process group: stop() reaches the children a server may spawn
            self._process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self._process is not None
        give_up = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < give_up:
            try:
                if httpx.get(self.url + self.ready_path, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass  # not listening yet
            try:
                code = self._process.wait(timeout=0.2)  # doubles as the poll interval
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError(f"the server exited with {code} before ready:\n{self.log_tail()}")
        raise TimeoutError(f"the server was not ready in {READY_TIMEOUT_S:.0f} s")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        with contextlib.suppress(ProcessLookupError):  # children that outlived the parent
            os.killpg(process.pid, signal.SIGKILL)

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
