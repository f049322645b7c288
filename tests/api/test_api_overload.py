"""A full queue is refused at once: 503/UNAVAILABLE, or 429/RESOURCE_EXHAUSTED by config.

One worker, batches of one, a queue of one: a burst of concurrent requests overflows it
(decoding is far faster than a forward pass), so some are refused and the rest answered.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import httpx
import pytest
from api_harness import MODEL, RunningServer, running_server, server_settings

from maskserve.api.gen import segment_pb2 as pb
from maskserve.api.gen import segment_pb2_grpc as pb_grpc

BURST = 24
EXPECTED = {
    "unavailable": (503, grpc.StatusCode.UNAVAILABLE),
    "resource_exhausted": (429, grpc.StatusCode.RESOURCE_EXHAUSTED),
}


@pytest.fixture(scope="module", params=sorted(EXPECTED))
def tight_server(request: pytest.FixtureRequest, repository: Path) -> Iterator[RunningServer]:
    settings = server_settings(
        repository,
        max_batch_size=1,
        max_queue_delay_ms=0.0,
        max_queue_size=1,
        overload_status=request.param,
    )
    with running_server(settings) as running:
        yield running


def test_rest_burst_overflows_the_queue(tight_server: RunningServer, png: bytes) -> None:
    status, _ = EXPECTED[tight_server.server.settings.overload_status]

    limits = httpx.Limits(max_connections=BURST)
    client = httpx.Client(base_url=tight_server.http_url, limits=limits, timeout=60)

    def segment(_: int) -> httpx.Response:
        return client.post(
            f"/v1/models/{MODEL}/segment",
            content=png,
            headers={"content-type": "image/png"},
            params={"mask_format": "none"},
        )

    with client, ThreadPoolExecutor(BURST) as pool:
        responses = list(pool.map(segment, range(BURST)))
        assert segment(0).status_code == 200
    codes = [r.status_code for r in responses]
    assert set(codes) == {200, status}, codes
    for refused in (r for r in responses if r.status_code == status):
        assert refused.json()["error"]["code"] == "overloaded"
        assert int(refused.headers["retry-after"]) >= 1


def test_grpc_burst_overflows_the_queue(tight_server: RunningServer, png: bytes) -> None:
    _, code = EXPECTED[tight_server.server.settings.overload_status]
    with grpc.insecure_channel(tight_server.grpc_target) as channel:
        stub = pb_grpc.SegmentationStub(channel)
        options = pb.SegmentOptions(mask_format=pb.NONE)
        request = pb.SegmentRequest(model=MODEL, image=png, options=options)
        calls = [stub.Segment.future(request, timeout=60) for _ in range(BURST)]
        outcomes = [call.exception() or "ok" for call in calls]
    refused = [o for o in outcomes if o != "ok"]
    assert refused and len(refused) < BURST
    for error in refused:
        assert error.code() is code, error
        assert ("maskserve-error-code", "overloaded") in tuple(error.trailing_metadata())
