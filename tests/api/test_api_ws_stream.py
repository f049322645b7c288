"""The WebSocket frame stream ``/v1/models/{m}/stream``, over a real socket and, for the
bounds, on the server's loop with the real service (as the gRPC stream is tested).

Stream state is read on the server's loop (``FrameStream.open_streams``), so a test gates
on what the server is doing, never on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import pytest
from api_harness import (
    BODY_LIMIT,
    MODEL,
    RunningServer,
    encode,
    eventually,
    metric,
    running_server,
    server_settings,
)
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.protocol import State
from websockets.sync.client import connect
from websockets.uri import parse_uri

from maskserve.api.frame_stream import DEFAULT_MAX_PENDING
from maskserve.api.ws_stream import Incoming, WsFrameStream
from maskserve.options import SegmentOptions

WAIT_S = 60.0
T = TypeVar("T")
# Answers of ~40 KB (every candidate, exact polygons) fill socket buffers in a few frames.
BIG_ANSWERS = "?mask_format=polygon&polygon_tolerance=0&score_threshold=0&max_detections=100"


def url(server: RunningServer, query: str = "", model: str = MODEL) -> str:
    return f"ws://127.0.0.1:{server.server.http_port}/v1/models/{model}/stream{query}"


def rest_json(server: RunningServer, image: bytes) -> dict[str, Any]:
    answer = httpx.post(
        f"{server.http_url}/v1/models/{MODEL}/segment",
        content=image,
        headers={"content-type": "image/png"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def on_loop(server: RunningServer, look: Callable[[], T]) -> T:
    """``look()`` run on the server's loop (between two of its steps)."""

    async def call() -> T:
        return look()

    return asyncio.run_coroutine_threadsafe(call(), server.loop).result(timeout=WAIT_S)


def open_streams(server: RunningServer) -> list[WsFrameStream]:
    streams = WsFrameStream.open_streams(server.server.service)
    return [s for s in streams if isinstance(s, WsFrameStream)]


def requests(server: RunningServer, status: str) -> float:
    labels = {"model": MODEL, "protocol": "ws", "status": status}
    return metric(server.http_url, "maskserve_requests_total", **labels)


@pytest.fixture(scope="module")
def big_jpeg() -> bytes:
    from maskserve.models.synthetic.generator import generate_sample

    rng = np.random.default_rng(7)
    return encode(generate_sample(rng, 480, 640, max_objects=5).image, "JPEG")


def test_frames_answered_in_order_with_ids_and_errors_inside(
    server: RunningServer, png: bytes
) -> None:
    expected = rest_json(server, png)["detections"]
    before = {s: requests(server, s) for s in ("ok", "invalid_image", "invalid_option")}
    with connect(url(server, "?max_detections=50"), open_timeout=WAIT_S) as ws:
        ws.send(png)
        ws.send(json.dumps({"frame_id": 10}))
        ws.send(png)
        ws.send(b"not an image")
        ws.send("nonsense")
        ws.send(png)
        answers = [json.loads(ws.recv(timeout=WAIT_S)) for _ in range(5)]
    assert [a["frame_id"] for a in answers] == [0, 10, 11, 12, 13]
    for index in (0, 1, 4):
        assert answers[index]["result"]["detections"] == expected
    assert answers[2]["error"]["status"] == 400 and answers[2]["error"]["code"] == "invalid_image"
    assert answers[3]["error"]["code"] == "invalid_option"
    counted = {s: requests(server, s) - before[s] for s in before}
    assert counted == {"ok": 3, "invalid_image": 1, "invalid_option": 1}


def test_bad_options_and_unknown_models_close_with_1008(server: RunningServer) -> None:
    for query, model in [("?max_detections=x", MODEL), ("?mask_format=bmp", MODEL), ("", "no")]:
        with connect(url(server, query, model), open_timeout=WAIT_S) as ws:
            error = json.loads(ws.recv(timeout=WAIT_S))["error"]
            assert error["code"] and error["message"]
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=WAIT_S)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_skip_stale_over_the_socket(server: RunningServer, png: bytes) -> None:
    with connect(url(server, "?skip_stale=1"), open_timeout=WAIT_S) as ws:
        for _ in range(12):
            ws.send(png)
        answers = [json.loads(ws.recv(timeout=WAIT_S)) for _ in range(12)]
    assert [a["frame_id"] for a in answers] == list(range(12))
    assert all(bool(a.get("skipped")) != ("result" in a) for a in answers)
    assert "result" in answers[-1], "the newest frame is never stale"


def test_a_frame_larger_than_a_body_closes_with_1009(server: RunningServer, png: bytes) -> None:
    with connect(url(server), open_timeout=WAIT_S, max_size=None) as ws:
        ws.send(png)
        assert "result" in json.loads(ws.recv(timeout=WAIT_S))
        ws.send(b"\0" * (BODY_LIMIT + 1))
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=WAIT_S)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert rest_json(server, png)["detections"]


def test_a_closing_client_leaves_nothing_behind(server: RunningServer, png: bytes) -> None:
    with connect(url(server), open_timeout=WAIT_S) as ws:
        for _ in range(3):
            ws.send(png)
    eventually(lambda: not on_loop(server, lambda: open_streams(server)), "the stream to end")
    assert server.server.service.in_flight == 0  # every frame the stream held was released
    assert metric(server.http_url, "maskserve_inflight_requests", model=MODEL) == 0
    assert rest_json(server, png)["detections"]


class SilentClient:
    """A WebSocket client (websockets' sans-I/O protocol on a plain socket) that reads
    nothing after the handshake, with the smallest receive window the kernel allows, and
    sends frames from a thread until its socket blocks or is shut down."""

    def __init__(self, address: str) -> None:
        uri = parse_uri(address)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1)
        self.sock.settimeout(WAIT_S)  # a safety net for a blocked send
        self.sock.connect((uri.host, uri.port))
        self.protocol = ClientProtocol(uri)
        self.protocol.send_request(self.protocol.connect())
        self.sock.sendall(b"".join(self.protocol.data_to_send()))
        while self.protocol.state is State.CONNECTING:
            data = self.sock.recv(4096)
            assert data, "the server closed during the handshake"
            self.protocol.receive_data(data)
        assert self.protocol.state is State.OPEN, self.protocol.handshake_exc
        self.sent = 0
        self._sender: threading.Thread | None = None

    def send_forever(self, frame: bytes) -> None:
        def run() -> None:
            with contextlib.suppress(OSError):
                while True:
                    self.protocol.send_binary(frame)
                    self.sock.sendall(b"".join(self.protocol.data_to_send()))
                    self.sent += 1

        self._sender = threading.Thread(target=run, name="silent-client", daemon=True)
        self._sender.start()

    def vanish(self) -> None:
        """Gone without a close frame (shut down, reset: unread data is pending)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        if self._sender is not None:
            self._sender.join(WAIT_S)
            assert not self._sender.is_alive()


@pytest.mark.slow
def test_a_client_that_never_reads_is_not_read_then_vanishes(
    server: RunningServer, big_jpeg: bytes, png: bytes
) -> None:
    """The server answers until the socket pushes back, then holds max_pending frames,
    reads one more and stops reading; the client's frames wait in the sockets."""
    client = SilentClient(url(server, BIG_ANSWERS))
    seen: list[tuple[int, int, int]] = []

    def parked() -> bool:
        def look() -> tuple[int, int, int] | None:
            for stream in open_streams(server):
                if stream.sending and stream.reader_waiting:  # both wait on the client
                    return stream.received, stream.written, stream.pending
            return None

        state = on_loop(server, look)
        if state is None or client.sent < state[0] + 2:
            return False
        seen.append(state)
        return True

    try:
        client.send_forever(big_jpeg)
        eventually(parked, "the stream to stop reading a client that never reads", WAIT_S)
    finally:
        client.vanish()
    received, written, pending = seen[-1]
    assert pending == DEFAULT_MAX_PENDING
    assert received == written + DEFAULT_MAX_PENDING + 1
    assert client.sent >= received + 2
    eventually(lambda: not on_loop(server, lambda: open_streams(server)), "the stream to end")
    assert server.server.service.in_flight == 0
    assert metric(server.http_url, "maskserve_inflight_requests", model=MODEL) == 0
    assert rest_json(server, png)["detections"]


def test_a_client_that_never_reads_is_not_read_either(server: RunningServer, png: bytes) -> None:
    """K frames held; the reader takes one more and then waits for room (on the loop)."""
    max_pending = 3

    async def scenario() -> list[tuple[int, int]]:
        pulled = 0

        async def frames() -> AsyncIterator[Incoming]:
            nonlocal pulled
            for i in itertools.count():
                pulled += 1
                yield i, png, None

        stream = WsFrameStream(
            server.server.service,
            MODEL,
            SegmentOptions(),
            max_pending=max_pending,
            max_in_flight=1,
        )
        stream.start(frames())
        for _ in range(3):
            await asyncio.sleep(0)  # one loop pass each: the reader runs until it blocks
        trace = [(0, pulled)]
        try:
            for taken in range(1, 5):
                answer = await stream.next_result()
                assert answer is not None and json.loads(answer)["frame_id"] == taken - 1
                trace.append((taken, pulled))
        finally:
            stream.close()
        return trace

    trace = asyncio.run_coroutine_threadsafe(scenario(), server.loop).result(timeout=120)
    assert trace[0] == (0, max_pending + 1)
    assert all(pulled <= taken + max_pending + 1 for taken, pulled in trace)


def test_skip_stale_answers_skipped_frames_in_their_place(
    server: RunningServer, png: bytes
) -> None:
    async def scenario() -> list[dict[str, Any]]:
        async def frames() -> AsyncIterator[Incoming]:
            for i in range(6):  # arrive at once, while frame 0 is in the service
                yield i, png, None

        stream = WsFrameStream(
            server.server.service,
            MODEL,
            SegmentOptions(),
            max_pending=2,
            max_in_flight=1,
            skip_stale=True,
        )
        stream.start(frames())
        answers = []
        try:
            while (answer := await stream.next_result()) is not None:
                answers.append(json.loads(answer))
        finally:
            stream.close()
        return answers

    answers = asyncio.run_coroutine_threadsafe(scenario(), server.loop).result(timeout=120)
    assert [a["frame_id"] for a in answers] == list(range(6))
    assert [bool(a.get("skipped")) for a in answers] == [False] + [True] * 4 + [False]


def test_the_api_key_may_come_in_the_query_for_websockets_only(
    repository: Path, png: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    settings = server_settings(repository, api_keys=["s3cret"])
    caplog.set_level(logging.INFO)
    with running_server(settings) as secured:
        with connect(url(secured, "?api_key=s3cret&max_detections=5"), open_timeout=WAIT_S) as ws:
            ws.send(png)
            assert len(json.loads(ws.recv(timeout=WAIT_S))["result"]["detections"]) <= 5
        header = {"x-api-key": "s3cret"}
        with connect(url(secured), additional_headers=header, open_timeout=WAIT_S) as ws:
            ws.send(png)
            assert "result" in json.loads(ws.recv(timeout=WAIT_S))
        for query in ("?api_key=wrong", ""):
            with pytest.raises(InvalidStatus) as refused:  # at the handshake
                connect(url(secured, query), open_timeout=WAIT_S)
            assert refused.value.response.status_code == 403
        plain = httpx.get(f"{secured.http_url}/v1/models?api_key=s3cret", timeout=30)
        assert plain.status_code == 401, "a key in an HTTP URL is not taken"
        failures = metric(secured.http_url, "maskserve_auth_failures_total", protocol="ws")
        assert failures == 2
    logged = [r.getMessage() for r in caplog.records if "WebSocket /v1" in r.getMessage()]
    assert len(logged) == 4, logged  # each connection's line, without the key
    assert not [line for line in logged if "s3cret" in line or "api_key" in line]
    assert "max_detections=5" in logged[0]
