"""Clients that vanish, and draining: the server cancels their work and keeps serving.

These servers batch slowly (a lone request waits ``DELAY_MS`` for company), so a request is
reliably still queued when its client disappears or the server is told to stop.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import pytest
from api_harness import MODEL, RunningServer, eventually, metric, running_server, server_settings
from grpc_health.v1 import health_pb2, health_pb2_grpc

from maskserve.api.gen import segment_pb2 as pb
from maskserve.api.gen import segment_pb2_grpc as pb_grpc

DELAY_MS = 3000.0
SEGMENT = f"/v1/models/{MODEL}/segment"
# The drain test's request waits in a batch that only the drain closes, so it is provably
# in flight when the stop comes, however fast the model is (no timing); the drain then
# answers it.
HELD = {
    "adaptive_batching": False,
    "max_batch_size": 16,
    "max_queue_delay_ms": 600_000.0,
    "request_timeout_s": 600.0,
}


def slow_settings(repository: Path):
    return server_settings(repository, max_batch_size=8, max_queue_delay_ms=DELAY_MS)


@pytest.fixture(scope="module")
def slow_server(repository: Path) -> Iterator[RunningServer]:
    with running_server(slow_settings(repository)) as running:
        yield running


def inflight(server: RunningServer) -> float:
    return metric(server.http_url, "maskserve_inflight_requests", model=MODEL)


def cancelled(server: RunningServer, protocol: str) -> float:
    labels = {"model": MODEL, "protocol": protocol, "status": "cancelled"}
    return metric(server.http_url, "maskserve_requests_total", **labels)


def test_rest_client_disconnect_cancels_the_work(slow_server: RunningServer, png: bytes) -> None:
    before = cancelled(slow_server, "rest")
    head = (
        f"POST {SEGMENT} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
        f"Content-Length: {len(png)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", slow_server.server.http_port)) as sock:
        sock.sendall(head + png)
        eventually(lambda: inflight(slow_server) == 1, "the request to reach the service")
    eventually(lambda: cancelled(slow_server, "rest") == before + 1, "the work to be cancelled")
    assert inflight(slow_server) == 0


def test_grpc_client_vanishing_mid_stream_cancels_its_frames(
    slow_server: RunningServer, png: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    before = cancelled(slow_server, "grpc")
    hold = threading.Event()

    def frames() -> Iterator[pb.StreamFrame]:
        for i in range(3):
            yield pb.StreamFrame(frame_id=i, image=png, model=MODEL)
        hold.wait(60)  # keep the stream open, as a live camera would

    with grpc.insecure_channel(slow_server.grpc_target) as channel:
        call = pb_grpc.SegmentationStub(channel).SegmentStream(frames(), timeout=60)
        eventually(lambda: inflight(slow_server) >= 1, "frames to reach the service")
        call.cancel()
    hold.set()
    eventually(lambda: inflight(slow_server) == 0, "the stream's frames to be cancelled")
    assert cancelled(slow_server, "grpc") > before
    with grpc.insecure_channel(slow_server.grpc_target) as channel:
        frame = pb.StreamFrame(frame_id=9, image=png, model=MODEL)
        (result,) = pb_grpc.SegmentationStub(channel).SegmentStream(iter([frame]), timeout=60)
    assert result.frame_id == 9 and result.WhichOneof("outcome") == "result"
    assert not [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")]


def test_drain_finishes_in_flight_work_and_refuses_new(repository: Path, png: bytes) -> None:
    with running_server(server_settings(repository, **HELD)) as running:
        url = running.http_url

        def segment() -> httpx.Response:
            return httpx.post(
                url + SEGMENT, content=png, headers={"content-type": "image/png"}, timeout=60
            )

        with ThreadPoolExecutor(2) as pool, grpc.insecure_channel(running.grpc_target) as ch:
            in_flight = pool.submit(segment)
            eventually(lambda: inflight(running) == 1, "the request to reach the service")
            # one unit of work the drain must wait for, released below: the server stays
            # draining (not stopped) while the checks run
            running.call(running.server.service.hold)
            running.call(running.server.request_stop)
            eventually(lambda: httpx.get(url + "/readyz").status_code == 503, "readyz 503")
            health = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
            assert health.status == health_pb2.HealthCheckResponse.NOT_SERVING
            refused = segment()
            assert refused.status_code == 503 and refused.headers["retry-after"]
            with pytest.raises(grpc.RpcError) as caught:
                pb_grpc.SegmentationStub(ch).Segment(
                    pb.SegmentRequest(model=MODEL, image=png), timeout=30
                )
            assert caught.value.code() is grpc.StatusCode.UNAVAILABLE
            assert in_flight.result(timeout=60).status_code == 200
            running.call(running.server.service.release)
        running.thread.join(60)
    # leaving running_server asserts the exit code was 0
