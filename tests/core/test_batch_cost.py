"""Adaptive batching: the cost model's choice, and workers that feed it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from maskserve.batch_cost import EXPLORE_EVERY, BatchCostModel, candidate_sizes
from maskserve.batching import DynamicBatcher
from maskserve.metrics import Metrics
from maskserve.models.registry import ModelSpec
from maskserve.workers import Worker


def test_candidate_sizes_are_powers_of_two_up_to_the_bound() -> None:
    assert candidate_sizes(1) == [1]
    assert candidate_sizes(8) == [1, 2, 4, 8]
    assert candidate_sizes(6) == [1, 2, 4, 6]


def feed(model: BatchCostModel, per_image_ms: dict[int, float]) -> None:
    for size, ms in per_image_ms.items():
        model.observe(size, size * ms / 1e3)


def test_a_batch_slower_per_image_is_not_chosen() -> None:
    model = BatchCostModel(8)
    feed(model, {1: 494.0, 2: 520.0, 4: 610.0, 8: 779.0})  # the ResNet-50 curve on CPU
    assert model.limit == 1


def test_the_cheapest_per_image_wins_when_batching_pays() -> None:
    model = BatchCostModel(8)
    feed(model, {1: 50.0, 2: 40.0, 4: 30.0, 8: 29.5})
    assert model.limit == 4  # 8 is not 5 % cheaper than 4: noise must not flip the choice
    feed(model, {8: 20.0})
    assert model.limit == 8


def test_the_latency_budget_caps_the_size() -> None:
    model = BatchCostModel(8, budget_s=0.15)
    feed(model, {1: 100.0, 2: 60.0, 4: 40.0, 8: 30.0})  # batches of 4 and 8 exceed 0.15 s
    assert model.limit == 2


def test_running_means_follow_a_change_of_load() -> None:
    model = BatchCostModel(2)
    feed(model, {1: 100.0, 2: 60.0})
    assert model.limit == 2
    for _ in range(20):  # batches of 2 became slow (another process took the cores)
        model.observe(2, 0.4)
    assert model.limit == 1


def test_exploration_tries_the_next_size_now_and_then() -> None:
    model = BatchCostModel(8)
    feed(model, {1: 100.0, 2: 120.0})
    limits = [model.next_limit() for _ in range(EXPLORE_EVERY)]
    assert limits[:-1] == [1] * (EXPLORE_EVERY - 1) and limits[-1] == 2


class CostedBackend:
    """Answers nothing, but advances a fake clock by a cost per batch size."""

    def __init__(self, clock: list[float], cost_s: Callable[[int], float]) -> None:
        from maskserve.models.base import ModelInfo

        self.clock, self.cost_s, self.calls = clock, cost_s, []
        self.info = ModelInfo(
            name="m",
            family="fake",
            class_names=("a",),
            input_size=8,
            device="cpu",
            dtype="float32",
            max_detections=1,
        )

    def infer(self, images: list[np.ndarray], max_detections: int) -> list[object]:
        self.calls.append(len(images))
        self.clock[0] += self.cost_s(len(images))
        return [object() for _ in images]


def probe(cost_s: Callable[[int], float], max_batch_size: int = 8) -> tuple[BatchCostModel, list]:
    clock = [0.0]
    backend = CostedBackend(clock, cost_s)
    spec = ModelSpec("m", Path("."), "fake", Path("w"), {})

    async def body() -> BatchCostModel:
        model = BatchCostModel(max_batch_size)
        batcher = DynamicBatcher("m", max_batch_size, 1.0, 8, cost_model=model)
        worker = Worker(
            spec,
            torch.device("cpu"),
            0,
            batcher,
            lambda *_: backend,
            metrics=Metrics(gpu=False),
            clock=lambda: clock[0],
        )
        await worker.load()
        await worker.stop()
        return model

    return asyncio.run(body()), backend.calls


def test_workers_probe_sizes_after_warm_up_and_stop_when_it_stops_paying() -> None:
    model, calls = probe(lambda n: 0.1 * n**1.2)  # every larger batch costs more per image
    assert model.limit == 1
    assert calls == [1, 1, 2, 2]  # warm-up, 1, then 2 (shape warm-up + timed); 4 never
    assert model.per_image_ms() == pytest.approx({1: 100.0, 2: 114.87}, rel=1e-3)


def test_workers_probe_every_size_while_batching_pays() -> None:
    model, calls = probe(lambda n: 0.05 + 0.01 * n)  # fixed cost per batch dominates
    assert model.limit == 8
    assert calls == [1, 1, 2, 2, 4, 4, 8, 8]
