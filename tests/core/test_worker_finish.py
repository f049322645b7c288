"""Finishers: an idle worker runs each request's post-processing on its own thread; a busy
one leaves it to the caller; a finisher's failure is its own request's."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from core_fakes import WAIT_S, FakeControl, write_fake_model

from maskserve.batching import DynamicBatcher, ItemOutcome
from maskserve.models.registry import ModelSpec, build_backend
from maskserve.models.types import Detections
from maskserve.workers import Worker

FAR = 3600.0


def image(value: int) -> np.ndarray:
    return np.full((8, 8, 3), value, dtype=np.uint8)


def thread_and_score(detections: Detections) -> tuple[str, float]:
    """A finisher that reports where it ran and what it was given."""
    return threading.current_thread().name, float(detections.scores[0])


@asynccontextmanager
async def one_worker(
    root: Path, max_batch_size: int
) -> AsyncIterator[tuple[DynamicBatcher, FakeControl]]:
    """A real worker on the fake family, consuming a real batcher with no queue delay."""
    control = write_fake_model(root, "m")
    batcher = DynamicBatcher("m", max_batch_size, 0.0, 16)
    spec = ModelSpec.from_folder(root / "m")
    worker = Worker(spec, torch.device("cpu"), 0, batcher, build_backend)
    await worker.load()
    worker.start()
    try:
        yield batcher, control
    finally:
        batcher.close()
        await worker.stop()


def deadline() -> float:
    return asyncio.get_running_loop().time() + FAR


def test_an_idle_worker_finishes_on_its_own_thread(tmp_path: Path) -> None:
    async def body() -> ItemOutcome:
        async with one_worker(tmp_path, 4) as (batcher, _):
            return await asyncio.wait_for(
                batcher.submit(image(51), deadline(), thread_and_score), WAIT_S
            )

    outcome = asyncio.run(body())
    assert outcome.finished is not None
    thread, score = outcome.finished
    assert thread.startswith("maskserve-m@cpu#0")
    assert score == pytest.approx(51 / 255)


def test_a_worker_with_requests_waiting_leaves_the_finish_to_the_caller(tmp_path: Path) -> None:
    async def body() -> tuple[ItemOutcome, ItemOutcome]:
        async with one_worker(tmp_path, 1) as (batcher, control):
            control.gate = threading.Event()
            first = asyncio.ensure_future(batcher.submit(image(10), deadline(), thread_and_score))
            assert await asyncio.to_thread(control.entered.wait, WAIT_S)
            second = asyncio.ensure_future(batcher.submit(image(20), deadline(), thread_and_score))
            await asyncio.sleep(0)  # let the second request reach the queue
            assert batcher.depth == 1
            control.gate.set()
            return await asyncio.wait_for(asyncio.gather(first, second), WAIT_S)

    busy, idle = asyncio.run(body())
    assert busy.finished is None  # the second request was waiting when the first batch ended
    assert float(busy.detections.scores[0]) == pytest.approx(10 / 255)
    assert idle.finished is not None and idle.finished[1] == pytest.approx(20 / 255)


def test_a_failing_finisher_fails_only_its_request(tmp_path: Path) -> None:
    def broken(detections: Detections) -> object:
        raise ValueError("cannot encode this one")

    async def body() -> list[object]:
        async with one_worker(tmp_path, 2) as (batcher, control):
            control.gate = threading.Event()
            held = asyncio.ensure_future(batcher.submit(image(1), deadline()))
            assert await asyncio.to_thread(control.entered.wait, WAIT_S)
            bad = asyncio.ensure_future(batcher.submit(image(2), deadline(), broken))
            good = asyncio.ensure_future(batcher.submit(image(3), deadline(), thread_and_score))
            await asyncio.sleep(0)
            control.gate.set()
            return await asyncio.wait_for(
                asyncio.gather(held, bad, good, return_exceptions=True), WAIT_S
            )

    held, bad, good = asyncio.run(body())
    assert isinstance(held, ItemOutcome) and held.finished is None  # no finisher given
    assert isinstance(bad, ValueError) and "cannot encode" in str(bad)
    assert isinstance(good, ItemOutcome) and good.finished[1] == pytest.approx(3 / 255)
