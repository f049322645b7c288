"""A graceful stop (what SIGTERM starts) during a frame stream, gRPC and WebSocket alike:
the frames a stream already took in are finished, not refused; only new ones are.

Batches wait (10 min) for company they never get, so the first frames stay in the service
and the next ones wait in the stream until the stop's drain runs the batch. The stop is
``MaskserveServer.request_stop`` called on the server's loop (the signal handler's call);
every step gates on the stream's state read on that loop, never on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import queue
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from api_harness import (
    MODEL,
    STOP_TIMEOUT_S,
    RunningServer,
    eventually,
    metric,
    running_server,
    server_settings,
)
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from maskserve.api.frame_stream import DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_PENDING, FrameStream
from maskserve.api.gen import segment_pb2 as pb
from maskserve.api.gen import segment_pb2_grpc as pb_grpc
from maskserve.api.grpc_stream import FrameStream as GrpcFrameStream
from maskserve.api.ws_stream import WsFrameStream

WAIT_S = 60.0
T = TypeVar("T")
HOLD_BATCHES = {
    "adaptive_batching": False,
    "max_batch_size": 16,
    "max_queue_delay_ms": 600_000.0,
    "request_timeout_s": 600.0,
    "drain_grace_s": 120.0,
}
TAKEN_IN = DEFAULT_MAX_PENDING  # frames the stream holds when the stop comes


@contextlib.contextmanager
def stopping_server(repository: Path) -> Iterator[RunningServer]:
    """A server of its own, which the test stops; it must exit 0."""
    with running_server(server_settings(repository, **HOLD_BATCHES)) as running:
        try:
            yield running
        finally:
            if running.server.stopping:
                running.thread.join(STOP_TIMEOUT_S)


def on_loop(server: RunningServer, look: Callable[[], T]) -> T:
    async def call() -> T:
        return look()

    return asyncio.run_coroutine_threadsafe(call(), server.loop).result(timeout=WAIT_S)


def the_stream(server: RunningServer, kind: type[FrameStream]) -> FrameStream | None:
    streams = on_loop(server, lambda: kind.open_streams(server.server.service))
    return streams[0] if len(streams) == 1 else None


def stop_with_frames_held(
    server: RunningServer, kind: type[FrameStream], send_one: Callable[[int], None]
) -> None:
    """Frames 0..3 taken in (two in a waiting batch, two waiting in the stream), frame 4
    read and waiting for room; then the stop, and wait until it drains."""
    for frame_id in range(TAKEN_IN):
        send_one(frame_id)

    def held() -> bool:
        stream = the_stream(server, kind)
        in_service = metric(server.http_url, "maskserve_inflight_requests", model=MODEL)
        return (
            stream is not None
            and stream.pending == TAKEN_IN
            and in_service == DEFAULT_MAX_IN_FLIGHT
        )

    eventually(held, "two frames in a waiting batch and two waiting in the stream", WAIT_S)
    send_one(TAKEN_IN)

    def waiting() -> bool:
        stream = the_stream(server, kind)
        return stream is not None and stream.received == TAKEN_IN + 1 and stream.reader_waiting

    eventually(waiting, "the next frame to wait for room", WAIT_S)
    server.call(server.server.request_stop)
    eventually(lambda: on_loop(server, lambda: server.server.service.draining), "the drain")


@pytest.mark.slow
def test_a_websocket_stream_finishes_the_frames_it_took_in(repository: Path, png: bytes) -> None:
    with stopping_server(repository) as server:
        address = f"ws://127.0.0.1:{server.server.http_port}/v1/models/{MODEL}/stream"
        with connect(address, open_timeout=WAIT_S) as ws:
            stop_with_frames_held(server, WsFrameStream, lambda _: ws.send(png))
            answers = [json.loads(ws.recv(timeout=WAIT_S)) for _ in range(TAKEN_IN + 1)]
            with pytest.raises(ConnectionClosed) as closed:  # then the server goes
                ws.recv(timeout=WAIT_S)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012  # service restart
    assert [a["frame_id"] for a in answers] == list(range(TAKEN_IN + 1))
    assert all("result" in a for a in answers[:TAKEN_IN]), answers
    refused = answers[TAKEN_IN]["error"]
    assert refused["code"] == "model_not_ready" and refused["status"] == 503


@pytest.mark.slow
def test_a_grpc_stream_finishes_the_frames_it_took_in(repository: Path, png: bytes) -> None:
    frames: queue.Queue[pb.StreamFrame | None] = queue.Queue()

    def requests() -> Iterator[pb.StreamFrame]:
        while (frame := frames.get(timeout=WAIT_S)) is not None:
            yield frame

    def send_one(frame_id: int) -> None:
        frames.put(pb.StreamFrame(frame_id=frame_id, image=png, model=MODEL))

    with (
        stopping_server(repository) as server,
        grpc.insecure_channel(server.grpc_target) as channel,
    ):
        call = pb_grpc.SegmentationStub(channel).SegmentStream(requests(), timeout=120)
        stop_with_frames_held(server, GrpcFrameStream, send_one)
        results = [next(call) for _ in range(TAKEN_IN + 1)]
        frames.put(None)
        with contextlib.suppress(grpc.RpcError):  # ends, or is cut when gRPC stops
            assert list(call) == []
    assert [r.frame_id for r in results] == list(range(TAKEN_IN + 1))
    outcomes = [r.WhichOneof("outcome") for r in results]
    assert outcomes == ["result"] * TAKEN_IN + ["error"], results
    refused = results[TAKEN_IN].error
    assert refused.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert refused.reason == "model_not_ready"
