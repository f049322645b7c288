"""Admission by time: a request whose estimated queue wait it cannot afford is refused."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from maskserve.batch_cost import BatchCostModel
from maskserve.batching import DynamicBatcher
from maskserve.errors import DeadlineExceededError, OverloadedError

FAR = 3600.0


def image() -> np.ndarray:
    return np.zeros((4, 4, 3), np.uint8)


def batcher_with_costs(
    max_wait_s: float | None, workers: int = 1, wait_batches: float | None = None
) -> tuple[DynamicBatcher, list]:
    clock = [100.0]
    cost = BatchCostModel(4)
    cost.observe(4, 0.4)  # 0.1 s per image at batch 4 (the chosen size)
    cost.observe(1, 0.2)
    batcher = DynamicBatcher(
        "m",
        4,
        0.0,
        1000,
        clock=lambda: clock[0],
        cost_model=cost,
        max_queue_wait_s=max_wait_s,
        workers=workers,
        max_queue_wait_batches=wait_batches,
    )
    return batcher, clock


def test_estimated_wait_counts_the_batches_ahead() -> None:
    async def body() -> None:
        batcher, clock = batcher_with_costs(None)
        assert batcher.cost_model is not None and batcher.cost_model.limit == 4
        assert batcher.estimated_wait_s() == pytest.approx(0.2)  # its own batch, of one
        for _ in range(8):
            batcher.enqueue(image(), clock[0] + FAR)
        assert batcher.estimated_wait_s() == pytest.approx(1.2)  # two full batches ahead

    asyncio.run(body())


def test_a_request_that_would_outwait_its_deadline_is_refused_at_once() -> None:
    async def body() -> None:
        batcher, clock = batcher_with_costs(None)
        for _ in range(8):
            batcher.enqueue(image(), clock[0] + FAR)
        with pytest.raises(OverloadedError, match=r"would wait about 1\.2 s"):
            batcher.enqueue(image(), clock[0] + 1.0)
        batcher.enqueue(image(), clock[0] + 1.5)  # enough time left: admitted
        assert batcher.depth == 9

    asyncio.run(body())


def test_max_queue_wait_bounds_every_admitted_wait() -> None:
    async def body() -> None:
        batcher, clock = batcher_with_costs(max_wait_s=1.0)
        admitted = 0
        with pytest.raises(OverloadedError):
            for _ in range(100):
                batcher.enqueue(image(), clock[0] + FAR)
                admitted += 1
        assert admitted == 8  # the 9th would wait 1.2 s > 1.0 s

    asyncio.run(body())


def test_more_workers_drain_the_queue_faster() -> None:
    async def body() -> None:
        batcher, clock = batcher_with_costs(None, workers=2)
        for _ in range(8):
            batcher.enqueue(image(), clock[0] + FAR)
        assert batcher.estimated_wait_s() == pytest.approx(0.8)

    asyncio.run(body())


def test_without_measured_costs_only_the_count_bounds_the_queue() -> None:
    async def body() -> None:
        batcher = DynamicBatcher("m", 4, 0.0, 3, max_queue_wait_s=0.001)
        for _ in range(3):
            batcher.enqueue(image(), 1e12)
        with pytest.raises(OverloadedError, match="max_queue_size"):
            batcher.enqueue(image(), 1e12)

    asyncio.run(body())


def test_the_wait_in_batch_times_scales_with_the_measured_cost() -> None:
    async def body() -> None:
        batcher, clock = batcher_with_costs(None, wait_batches=3)
        admitted = 0
        with pytest.raises(OverloadedError, match=r"about 1\.6 s, more than the 1\.2 s"):
            for _ in range(100):
                batcher.enqueue(image(), clock[0] + FAR)
                admitted += 1
        assert admitted == 12  # three batches of 4 (0.4 s each); the 13th needs a 4th
        cost = batcher.cost_model
        assert cost is not None
        cost.observe(4, 0.8)  # the machine got slower: the bound in seconds follows
        slower = cost.batch_seconds(4)
        assert slower is not None and slower > 0.4
        with pytest.raises(OverloadedError, match=rf"more than the {3 * slower:.1f} s"):
            batcher.enqueue(image(), clock[0] + FAR)

    asyncio.run(body())


def test_requests_being_prepared_count_as_queued_and_admit_queues_nothing() -> None:
    async def body() -> None:
        batcher, clock = batcher_with_costs(None, wait_batches=2)
        batcher.admit(clock[0] + FAR)
        assert batcher.depth == 0
        with batcher.preparing(), batcher.preparing(), batcher.preparing(), batcher.preparing():
            assert batcher.estimated_wait_s() == pytest.approx(0.8)  # 4 ahead + its own
            for _ in range(4):  # 8 ahead with the own batch: two batches, still admitted
                batcher.enqueue(image(), clock[0] + FAR)
            with pytest.raises(OverloadedError):  # 8 ahead + its own: a third batch
                batcher.admit(clock[0] + FAR)
        batcher.admit(clock[0] + FAR)  # the four were prepared (or dropped): room again

    asyncio.run(body())


def test_the_batch_in_progress_counts_until_it_should_have_ended() -> None:
    async def body() -> None:
        batcher, clock = batcher_with_costs(None)
        for _ in range(4):
            batcher.enqueue(image(), clock[0] + FAR)
        taken = await batcher.next_batch()  # the one worker starts a batch of 4 at t = 100
        assert taken is not None and len(taken) == 4
        assert batcher.estimated_wait_s() == pytest.approx(0.6)  # its 0.4 s + a lone 0.2 s
        clock[0] += 0.3
        assert batcher.estimated_wait_s() == pytest.approx(0.3)
        clock[0] += 1.0  # it should have ended: the worker counts as free
        assert batcher.estimated_wait_s() == pytest.approx(0.2)

    asyncio.run(body())


def test_a_deadline_shorter_than_one_request_alone_is_a_deadline_error() -> None:
    """Not overload: an idle model still could not answer in time (504, not 503)."""

    async def body() -> None:
        batcher, clock = batcher_with_costs(None)  # one request alone: 0.2 s
        with pytest.raises(DeadlineExceededError, match=r"leaves 100\.0 ms, less than"):
            batcher.enqueue(image(), clock[0] + 0.1)
        batcher.enqueue(image(), clock[0] + 0.3)  # time for one batch: admitted
        assert batcher.depth == 1

    asyncio.run(body())
