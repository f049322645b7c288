"""Retry-After from the measured drain rate: the rate itself, the batcher's estimate on an
injected clock, and how the estimate reads in the REST header and the gRPC metadata."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from maskserve.api.errors import (
    MAX_RETRY_AFTER_S,
    RETRY_AFTER_S,
    retry_after_header,
    retry_after_ms,
)
from maskserve.api.http_app import error_response
from maskserve.batching import DynamicBatcher
from maskserve.drain_rate import WINDOW_S, DrainRate
from maskserve.errors import ModelNotReadyError, OverloadedError

FAR = 3600.0
SAFETY_S = 10.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_rate_counts_the_batches_taken_after_the_first_up_to_now() -> None:
    clock = FakeClock()
    rate = DrainRate(clock)
    assert rate.per_second() is None
    rate.record(4)
    assert rate.per_second() is None  # one batch opens the window, it measures nothing
    for _ in range(5):
        clock.now += 0.5
        rate.record(4)
    assert rate.per_second() == pytest.approx(20 / 2.5)
    assert rate.seconds_to_drain(16) == pytest.approx(2.0)
    clock.now += 2.5  # nothing taken since: a stalled worker slows the rate down
    assert rate.per_second() == pytest.approx(20 / 5.0)


def test_batches_older_than_the_window_are_forgotten() -> None:
    clock = FakeClock()
    rate = DrainRate(clock)
    rate.record(100)
    rate.record(100)
    clock.now += WINDOW_S + 1
    assert rate.per_second() is None
    rate.record(1)
    clock.now += 1
    rate.record(3)
    assert rate.per_second() == pytest.approx(3.0)


def test_a_full_queue_says_how_long_it_takes_to_drain() -> None:
    """10 requests/s measured (batches of 2 every 0.2 s), 6 queued: come back in 0.6 s."""

    async def body() -> None:
        clock = FakeClock()
        batcher = DynamicBatcher("m", 2, 0.0, max_queue_size=6, clock=clock)
        pixels = np.zeros((4, 4, 3), dtype=np.uint8)
        for _ in range(3):
            batcher.enqueue(pixels, clock.now + FAR)
            batcher.enqueue(pixels, clock.now + FAR)
            taken = await asyncio.wait_for(batcher.next_batch(), SAFETY_S)
            assert taken is not None and len(taken) == 2
            clock.now += 0.2
        for _ in range(6):
            batcher.enqueue(pixels, clock.now + FAR)
        with pytest.raises(OverloadedError) as refused:
            batcher.enqueue(pixels, clock.now + FAR)
        # 4 requests over the 0.6 s since the first batch: 6.67 requests/s
        assert refused.value.retry_after_s == pytest.approx(6 / (4 / 0.6))

    asyncio.run(body())


def test_before_any_rate_the_constant_applies() -> None:
    async def body() -> None:
        batcher = DynamicBatcher("m", 1, 0.0, max_queue_size=1)
        batcher.enqueue(np.zeros((4, 4, 3), dtype=np.uint8), FAR * 1e6)
        with pytest.raises(OverloadedError) as refused:
            batcher.enqueue(np.zeros((4, 4, 3), dtype=np.uint8), FAR * 1e6)
        assert refused.value.retry_after_s is None
        assert retry_after_header(refused.value) == str(RETRY_AFTER_S)

    asyncio.run(body())


@pytest.mark.parametrize(
    ("seconds", "header", "ms"),
    [(0.01, "1", "100"), (0.6, "1", "600"), (3.2, "4", "3200"), (1e6, "60", "60000")],
)
def test_rest_rounds_up_to_whole_seconds_grpc_keeps_milliseconds(
    seconds: float, header: str, ms: str
) -> None:
    error = OverloadedError("busy", retry_after_s=seconds)
    assert retry_after_header(error) == header and retry_after_ms(error) == ms
    response = error_response(error, "unavailable")
    assert response.status_code == 503 and response.headers["retry-after"] == header
    assert error_response(error, "resource_exhausted").headers["retry-after"] == header
    assert float(ms) / 1000 <= MAX_RETRY_AFTER_S


def test_a_model_not_ready_keeps_the_constant() -> None:
    response = error_response(ModelNotReadyError("starting"), "unavailable")
    assert response.headers["retry-after"] == str(RETRY_AFTER_S)
    assert retry_after_ms(ModelNotReadyError("starting")) == str(RETRY_AFTER_S * 1000)
