"""Bounded connections: a connection limit with fast 503s, a deadline that covers the
upload, silent HTTP connections closed, and idle gRPC connections closed (the client
reconnects transparently).

Real sockets against a real server: held connections are plain keep-alive HTTP/1.1
connections (one httpx client each, kept open by a long ``http_keep_alive_s``), and the
slow client is a raw socket that sends its body one byte at a time.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from api_harness import MODEL, RunningServer, eventually, running_server, server_settings
from prometheus_client.parser import text_string_to_metric_families

from maskserve.api.gen import segment_pb2 as pb
from maskserve.api.gen import segment_pb2_grpc as pb_grpc

SAFETY_S = 60.0


@pytest.fixture(scope="module")
def two_connections(repository: Path) -> Iterator[RunningServer]:
    settings = server_settings(repository, max_connections=2, http_keep_alive_s=600)
    with running_server(settings) as running:
        yield running


def _held(url: str) -> httpx.Client:
    """A client that keeps exactly one connection open."""
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=600)
    return httpx.Client(base_url=url, limits=limits, timeout=SAFETY_S)


def _sample(client: httpx.Client, name: str, model: str, protocol: str, status: str) -> float:
    """One sample of the server's /metrics, read through a held connection."""
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            labels = {"model": model, "protocol": protocol, "status": status}
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def _fresh_status(url: str) -> int:
    with httpx.Client(base_url=url, timeout=SAFETY_S) as client:
        return client.get("/healthz").status_code


def test_a_connection_over_the_limit_gets_503_and_the_held_ones_are_served(
    two_connections: RunningServer, png: bytes
) -> None:
    url = two_connections.http_url
    first, second = _held(url), _held(url)
    try:
        assert first.get("/healthz").status_code == 200
        assert second.get("/healthz").status_code == 200
        counted = ("maskserve_requests_total", "_unknown", "http", "overloaded")
        before = _sample(first, *counted)
        with httpx.Client(base_url=url, timeout=SAFETY_S) as third:
            refused = third.get("/healthz")
            assert refused.status_code == 503
            assert refused.headers.get("connection") == "close"
            assert refused.headers.get("retry-after") == "1"
            assert refused.json()["error"]["code"] == "overloaded"  # the error schema
        assert _sample(first, *counted) == before + 1
        segment = first.post(
            f"/v1/models/{MODEL}/segment", content=png, headers={"content-type": "image/png"}
        )
        assert segment.status_code == 200
        assert second.get("/readyz").status_code == 200
    finally:
        first.close()
    # the server learns of the close asynchronously: a new connection is served once it has
    eventually(lambda: _fresh_status(url) == 200, "a connection to be served after one closed")
    second.close()


def _own_channel(target: str) -> grpc.Channel:
    """A channel with its own connection (grpcio otherwise shares one between channels)."""
    return grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])


def _list_models(channel: grpc.Channel) -> str:
    stub = pb_grpc.SegmentationStub(channel)
    return stub.ListModels(pb.ListModelsRequest(), timeout=SAFETY_S).models[0].name


def test_a_grpc_connection_over_the_limit_is_refused_and_the_held_ones_served(
    two_connections: RunningServer,
) -> None:
    target = two_connections.grpc_target
    first, second = _own_channel(target), _own_channel(target)
    try:
        assert _list_models(first) == _list_models(second) == MODEL
        with _own_channel(target) as third, pytest.raises(grpc.RpcError) as refused:
            pb_grpc.SegmentationStub(third).ListModels(pb.ListModelsRequest(), timeout=10)
        assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
        assert _list_models(first) == MODEL  # the held connections are still served
    finally:
        first.close()

    def fresh_served() -> bool:
        with _own_channel(target) as fresh:
            try:
                return _list_models(fresh) == MODEL
            except grpc.RpcError:
                return False

    eventually(fresh_served, "a gRPC connection to be served after one closed")
    second.close()


def _trickle_until_answered(url: str, path: str, declared: int) -> tuple[bytes, int]:
    """Send the headers, then the body one byte at a time until the server answers;
    the answer's bytes and how many body bytes were sent."""
    host, port = url.removeprefix("http://").split(":")
    head = (
        f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: image/png\r\n"
        f"content-length: {declared}\r\n\r\n"
    )
    end = time.monotonic() + SAFETY_S
    with socket.create_connection((host, int(port)), timeout=SAFETY_S) as sock:
        sock.sendall(head.encode())
        sent = 0
        while not select.select([sock], [], [], 0.05)[0]:  # a byte per 50 ms: a slow client
            assert time.monotonic() < end, "the server never answered the slow upload"
            assert sent < declared, "the whole body went through before any answer"
            sock.sendall(b"\0")
            sent += 1
        answer = b""
        with contextlib.suppress(ConnectionError):  # a byte sent as it closed: a reset
            while chunk := sock.recv(65536):  # until the server closes the connection
                answer += chunk
    return answer, sent


def test_a_body_trickled_past_the_deadline_gets_504(server: RunningServer) -> None:
    answer, sent = _trickle_until_answered(
        server.http_url, f"/v1/models/{MODEL}/segment?timeout=1", declared=100_000
    )
    assert answer.startswith(b"HTTP/1.1 504"), answer[:200]
    assert b'"code":"deadline_exceeded"' in answer
    assert sent < 100_000


def test_an_oip_body_trickled_past_the_server_timeout_gets_504(repository: Path) -> None:
    """The protocol's ``timeout`` travels inside the body, so the server's bounds the upload."""
    with running_server(server_settings(repository, request_timeout_s=1.0)) as running:
        answer, sent = _trickle_until_answered(
            running.http_url, f"/v2/models/{MODEL}/infer", declared=100_000
        )
        assert answer.startswith(b"HTTP/1.1 504"), answer[:200]
        assert b"while the body was uploading" in answer
        assert sent < 100_000
        assert _fresh_status(running.http_url) == 200


def test_a_connection_that_never_sends_a_request_is_closed(repository: Path) -> None:
    """uvicorn alone would hold it for ever (its keep-alive timer starts after a response)."""
    settings = server_settings(repository, http_keep_alive_s=1)
    with running_server(settings) as running:
        address = ("127.0.0.1", running.server.http_port)
        with socket.create_connection(address, timeout=SAFETY_S) as silent:
            assert silent.recv(1) == b""  # closed by the server (a hang raises TimeoutError)
        assert _fresh_status(running.http_url) == 200


def test_an_idle_grpc_connection_is_closed_and_the_client_reconnects(
    repository: Path, png: bytes
) -> None:
    settings = server_settings(repository, grpc_max_connection_idle_s=0.5)
    with running_server(settings) as running, grpc.insecure_channel(running.grpc_target) as ch:
        states: list[grpc.ChannelConnectivity] = []
        idle_again = threading.Event()

        def watch(state: grpc.ChannelConnectivity) -> None:
            states.append(state)
            if state is grpc.ChannelConnectivity.IDLE and grpc.ChannelConnectivity.READY in states:
                idle_again.set()

        ch.subscribe(watch)
        stub = pb_grpc.SegmentationStub(ch)
        options = pb.SegmentOptions(mask_format=pb.NONE)
        stub.Segment(pb.SegmentRequest(model=MODEL, image=png, options=options), timeout=SAFETY_S)
        assert idle_again.wait(SAFETY_S), f"the idle connection was never closed: {states}"
        stub.Segment(pb.SegmentRequest(model=MODEL, image=png, options=options), timeout=SAFETY_S)
        ch.unsubscribe(watch)
