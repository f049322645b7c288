"""Per-model inference statistics in the shape Triton reports them (``ModelStatistics``).

Counts and cumulative durations since start: success and failure, queue wait, decode
(``compute_input``), forward (``compute_infer``) and assembly + encoding
(``compute_output``), and the same per batch size. Recorded per request by the service;
a batch of ``b`` requests therefore contributes ``1/b`` execution per request, which sums to
one execution per batch. perf_analyzer reads these to split latency into server stages.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

NS = 1_000_000_000


@dataclass
class Duration:
    count: float = 0.0
    seconds: float = 0.0

    def add(self, seconds: float, weight: float = 1.0) -> None:
        self.count += weight
        self.seconds += seconds * weight

    def to_json(self) -> dict[str, int]:
        return {"count": round(self.count), "ns": round(self.seconds * NS)}


@dataclass
class _BatchSize:
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)


@dataclass
class ModelStatistics:
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)
    batches: dict[int, _BatchSize] = field(default_factory=lambda: defaultdict(_BatchSize))
    last_inference_ms: int = 0

    def to_json(self, name: str) -> dict[str, Any]:
        stages = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")
        inference_stats = {stage: getattr(self, stage).to_json() for stage in stages}
        inference_stats["cache_hit"] = inference_stats["cache_miss"] = {"count": 0, "ns": 0}
        batch_stats = [
            {
                "batch_size": size,
                "compute_input": stats.compute_input.to_json(),
                "compute_infer": stats.compute_infer.to_json(),
                "compute_output": stats.compute_output.to_json(),
            }
            for size, stats in sorted(self.batches.items())
        ]
        return {
            "name": name,
            "version": "1",
            "last_inference": self.last_inference_ms,
            "inference_count": round(self.success.count),
            "execution_count": sum(round(s.compute_infer.count) for s in self.batches.values()),
            "inference_stats": inference_stats,
            "batch_stats": batch_stats,
        }


@dataclass(frozen=True)
class RequestTimes:
    """One successful request's stages, in seconds."""

    total: float
    queue: float
    decode: float
    infer: float
    output: float
    batch_size: int


class Statistics:
    """All models' statistics; used from the event loop thread only (no locking)."""

    def __init__(self, clock: Any = time.time) -> None:
        self._models: dict[str, ModelStatistics] = defaultdict(ModelStatistics)
        self._clock = clock

    def record_success(self, model: str, times: RequestTimes) -> None:
        stats = self._models[model]
        stats.success.add(times.total)
        stats.queue.add(times.queue)
        stats.compute_input.add(times.decode)
        stats.compute_infer.add(times.infer)
        stats.compute_output.add(times.output)
        share = 1.0 / max(1, times.batch_size)
        batch = stats.batches[times.batch_size]
        batch.compute_input.add(times.decode * times.batch_size, share)
        batch.compute_infer.add(times.infer, share)
        batch.compute_output.add(times.output * times.batch_size, share)
        stats.last_inference_ms = int(self._clock() * 1000)

    def record_failure(self, model: str, seconds: float) -> None:
        self._models[model].fail.add(seconds)

    def to_json(self, models: list[str]) -> dict[str, Any]:
        """Triton's ``/v2/models/stats`` body for ``models`` (each listed, even if unused)."""
        return {"model_stats": [self._models[m].to_json(m) for m in models]}
