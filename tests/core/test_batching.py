"""The dynamic batcher on its own: when batches close, bounds, deadlines, cancellation."""

from __future__ import annotations

import asyncio
import math
import time

import numpy as np
import pytest

from maskserve.batching import DynamicBatcher
from maskserve.errors import DeadlineExceededError, ModelNotReadyError, OverloadedError
from maskserve.metrics import Metrics

FAR = 3600.0  # a deadline no test reaches
SAFETY_S = 10.0  # bounds a wait that only a broken batcher would hit


def image(value: int) -> np.ndarray:
    return np.full((4, 4, 3), value, dtype=np.uint8)


async def yield_to_tasks() -> None:
    """One pass of the event loop: every ready task runs to its next await.

    Deterministic (asyncio runs ready callbacks in FIFO order), not a timed wait.
    """
    await asyncio.sleep(0)


def values(batch: list) -> list[int]:
    return [int(item.image[0, 0, 0]) for item in batch]


def test_batch_closes_at_max_batch_size_without_waiting_for_the_delay() -> None:
    async def body() -> None:
        batcher = DynamicBatcher(
            "m", max_batch_size=4, max_queue_delay_ms=600_000, max_queue_size=64
        )
        deadline = time.monotonic() + FAR
        for v in range(6):
            batcher.enqueue(image(v), deadline)
        first = await asyncio.wait_for(batcher.next_batch(), SAFETY_S)
        assert first is not None and values(first) == [0, 1, 2, 3]
        assert batcher.depth == 2

    asyncio.run(body())


def test_batch_closes_after_the_delay_with_what_has_arrived() -> None:
    async def body() -> None:
        batcher = DynamicBatcher("m", max_batch_size=8, max_queue_delay_ms=20, max_queue_size=64)
        batcher.enqueue(image(7), time.monotonic() + FAR)
        batch = await asyncio.wait_for(batcher.next_batch(), SAFETY_S)
        assert batch is not None and values(batch) == [7]

    asyncio.run(body())


def test_requests_arriving_within_the_delay_join_the_open_batch() -> None:
    async def body() -> None:
        batcher = DynamicBatcher(
            "m", max_batch_size=3, max_queue_delay_ms=600_000, max_queue_size=64
        )
        deadline = time.monotonic() + FAR
        batcher.enqueue(image(1), deadline)
        forming = asyncio.create_task(batcher.next_batch())
        await yield_to_tasks()  # the task takes the first request and waits for more
        assert batcher.depth == 0 and not forming.done()
        batcher.enqueue(image(2), deadline)
        batcher.enqueue(image(3), deadline)
        batch = await asyncio.wait_for(forming, SAFETY_S)
        assert batch is not None and values(batch) == [1, 2, 3]

    asyncio.run(body())


def test_full_queue_refuses_at_once() -> None:
    async def body() -> None:
        metrics = Metrics(gpu=False)
        batcher = DynamicBatcher("m", 4, 1.0, max_queue_size=2, metrics=metrics)
        deadline = time.monotonic() + FAR
        batcher.enqueue(image(1), deadline)
        batcher.enqueue(image(2), deadline)
        with pytest.raises(OverloadedError, match="max_queue_size 2"):
            batcher.enqueue(image(3), deadline)
        assert metrics.registry.get_sample_value("maskserve_queue_depth", {"model": "m"}) == 2

    asyncio.run(body())


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_expired_requests_fail_and_are_not_batched() -> None:
    async def body() -> None:
        clock = FakeClock()
        batcher = DynamicBatcher("m", 8, 0.0, 64, clock=clock)
        with pytest.raises(DeadlineExceededError):
            batcher.enqueue(image(1), clock.now - 1)
        expiring = batcher.enqueue(image(2), clock.now + 1)
        alive = batcher.enqueue(image(3), clock.now + FAR)
        clock.now += 2  # the second request's deadline passes while it waits
        batch = await asyncio.wait_for(batcher.next_batch(), SAFETY_S)
        assert batch is not None and values(batch) == [3]
        with pytest.raises(DeadlineExceededError, match="queue of model 'm'"):
            expiring.result()
        assert not alive.done()

    asyncio.run(body())


def test_cancelled_request_leaves_the_queue_and_is_not_batched() -> None:
    async def body() -> None:
        batcher = DynamicBatcher("m", 8, 0.0, 64)
        deadline = time.monotonic() + FAR
        batcher.enqueue(image(1), deadline)
        waiter = asyncio.create_task(batcher.submit(image(2), deadline))
        await yield_to_tasks()  # the task queues its request and awaits its future
        assert batcher.depth == 2
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert batcher.depth == 1
        batch = await asyncio.wait_for(batcher.next_batch(), SAFETY_S)
        assert batch is not None and values(batch) == [1]

    asyncio.run(body())


def test_close_fails_queued_requests_and_ends_consumers() -> None:
    async def body() -> None:
        batcher = DynamicBatcher("m", 8, 0.0, 64)
        queued = batcher.enqueue(image(1), time.monotonic() + FAR)
        batcher.close()
        assert await asyncio.wait_for(batcher.next_batch(), SAFETY_S) is None
        with pytest.raises(ModelNotReadyError):
            queued.result()
        with pytest.raises(ModelNotReadyError):
            batcher.enqueue(image(2), time.monotonic() + FAR)

    asyncio.run(body())


async def serve_lone_client(batcher: DynamicBatcher, clock: FakeClock, gap_s: float) -> list:
    """A closed-loop client: one request, its batch, then the next after ``gap_s``."""
    batches = []
    for v in range(8):
        batcher.enqueue(image(v), clock.now + FAR)
        batches.append(await asyncio.wait_for(batcher.next_batch(), SAFETY_S))
        clock.now += gap_s
    return batches


def test_a_lone_client_does_not_wait_for_company_that_never_comes() -> None:
    """Gaps far longer than the delay: after MIN_GAPS arrivals batches close at once.

    The delay (one hour, on a clock that only the test moves) would make a waiting batcher
    hit SAFETY_S.
    """

    async def body() -> None:
        clock = FakeClock()
        batcher = DynamicBatcher("m", 8, 3_600_000.0, 64, clock=clock)
        for v in range(5):  # a known past: every gap longer than the delay
            batcher.enqueue(image(v), math.inf)
            clock.now += 7200.0
        assert values(await asyncio.wait_for(batcher.next_batch(), SAFETY_S) or []) == [
            0,
            1,
            2,
            3,
            4,
        ]
        batches = await serve_lone_client(batcher, clock, gap_s=7200.0)
        assert [values(b) for b in batches] == [[v] for v in range(8)]

    asyncio.run(body())


def test_bursty_arrivals_still_wait_for_the_batch() -> None:
    async def body() -> None:
        clock = FakeClock()
        batcher = DynamicBatcher("m", 2, 3_600_000.0, 64, clock=clock)
        for v in range(6):  # bursts: gaps of 1 ms against a one-hour delay
            batcher.enqueue(image(v), clock.now + FAR)
            clock.now += 0.001
        for _ in range(3):
            assert len(await asyncio.wait_for(batcher.next_batch(), SAFETY_S) or []) == 2
        batcher.enqueue(image(9), clock.now + FAR)
        forming = asyncio.create_task(batcher.next_batch())
        await yield_to_tasks()
        assert not forming.done()  # company is expected: it waits
        batcher.enqueue(image(10), clock.now + FAR)
        batch = await asyncio.wait_for(forming, SAFETY_S)
        assert batch is not None and values(batch) == [9, 10]

    asyncio.run(body())


def test_arrival_prediction_can_be_switched_off() -> None:
    async def body() -> None:
        clock = FakeClock()
        batcher = DynamicBatcher("m", 8, 3_600_000.0, 64, clock=clock, predict_arrivals=False)
        for v in range(5):
            batcher.enqueue(image(v), math.inf)
            clock.now += 7200.0
        first = await asyncio.wait_for(batcher.next_batch(), SAFETY_S)
        assert first is not None and values(first) == [0, 1, 2, 3, 4]
        batcher.enqueue(image(5), clock.now + FAR)
        forming = asyncio.create_task(batcher.next_batch())
        await yield_to_tasks()
        assert not forming.done()  # waits for its delay, as without prediction
        batcher.close()
        await asyncio.wait_for(forming, SAFETY_S)

    asyncio.run(body())


def test_higher_priority_overtakes_waiting_requests_fifo_within_a_level() -> None:
    async def body() -> None:
        batcher = DynamicBatcher("m", max_batch_size=2, max_queue_delay_ms=0, max_queue_size=64)
        deadline = time.monotonic() + FAR
        # (value, priority): 0 = the default level (2), 1 = first, 3 and 9 = last level
        for value, priority in [(1, 0), (2, 3), (3, 1), (4, 2), (5, 9), (6, 1)]:
            batcher.enqueue(image(value), deadline, priority=priority)
        order = []
        while batcher.depth:
            batch = await asyncio.wait_for(batcher.next_batch(), SAFETY_S)
            assert batch is not None
            order += values(batch)
        assert order == [3, 6, 1, 4, 2, 5]

    asyncio.run(body())
