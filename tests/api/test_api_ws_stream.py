"""The WebSocket frame stream ``/v1/models/{m}/stream``, over a real socket and, for the
bounds, on the server's loop with the real service (as the gRPC stream is tested)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_harness import MODEL, RunningServer, metric_samples, running_server, server_settings
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from maskserve.api.ws_stream import Incoming, WsFrameStream
from maskserve.options import SegmentOptions

WAIT_S = 60.0


def url(server: RunningServer, query: str = "") -> str:
    return f"ws://127.0.0.1:{server.server.http_port}/v1/models/{MODEL}/stream{query}"


def rest_json(server: RunningServer, image: bytes) -> dict[str, Any]:
    answer = httpx.post(
        f"{server.http_url}/v1/models/{MODEL}/segment",
        content=image,
        headers={"content-type": "image/png"},
        timeout=60,
    )
    return answer.json()


def test_frames_answered_in_order_with_ids_and_errors_inside(
    server: RunningServer, png: bytes
) -> None:
    expected = rest_json(server, png)["detections"]
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


def test_bad_options_and_unknown_models_close_with_1008(server: RunningServer) -> None:
    for query, path in [("?max_detections=x", MODEL), ("", "nope")]:
        address = url(server, query).replace(f"/{MODEL}/", f"/{path}/")
        with connect(address, open_timeout=WAIT_S) as ws:
            error = json.loads(ws.recv(timeout=WAIT_S))["error"]
            assert error["message"]
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=WAIT_S)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008


def test_a_vanishing_client_leaves_nothing_behind(server: RunningServer, png: bytes) -> None:
    with connect(url(server), open_timeout=WAIT_S) as ws:
        for _ in range(3):
            ws.send(png)
    inflight = ("maskserve_inflight_requests", (("model", MODEL),))
    give_up = time.monotonic() + WAIT_S
    while metric_samples(server.http_url).get(inflight, 0.0) > 0:
        assert time.monotonic() < give_up, "frames of a gone client still in flight"
    assert rest_json(server, png)["detections"]


def test_a_client_that_never_reads_is_not_read_either(server: RunningServer, png: bytes) -> None:
    """K frames held; the reader takes one more and then waits for room."""
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


def test_the_api_key_may_come_in_the_query(repository: Path, png: bytes) -> None:
    settings = server_settings(repository, api_keys=["s3cret"])
    with running_server(settings) as secured:
        with connect(url(secured, "?api_key=s3cret"), open_timeout=WAIT_S) as ws:
            ws.send(png)
            assert "result" in json.loads(ws.recv(timeout=WAIT_S))
        with pytest.raises(InvalidStatus) as refused:  # at the handshake
            connect(url(secured, "?api_key=wrong"), open_timeout=WAIT_S)
        assert refused.value.response.status_code == 403
