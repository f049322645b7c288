"""The in-process ceiling of ``bench_serving.py``: the server's own work without a server.

The model's backend, built as a worker builds it, plus the server's ``select`` +
``build_result`` (RLE), run sequentially on this process's main thread.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import numpy as np
import torch

from maskserve.allocator import retain_freed_memory
from maskserve.imageio import decode_image
from maskserve.models.registry import ModelSpec, build_backend
from maskserve.options import SegmentOptions
from maskserve.results import build_result, select
from maskserve.settings import DTYPES
from maskserve.workers import configure_cpu_threads


@dataclass
class Ceiling:
    """One in-process measurement: batch-1 latencies and batched images/s."""

    latencies: list[float]
    batched_ips: float

    def p50(self) -> float:
        return float(np.percentile(self.latencies, 50))


class InProcess:
    """The same model's backend + the server's ``select`` + ``build_result`` (RLE)."""

    def __init__(self, spec: ModelSpec, args: argparse.Namespace, blobs: list[bytes]) -> None:
        device = torch.device(args.device)
        if args.retain_freed_memory == "true":
            retain_freed_memory()  # as `maskserve serve` does by default: a like-for-like ceiling
        if device.type == "cpu":
            configure_cpu_threads(1)  # as the server does for its one CPU worker
        self.backend = build_backend(spec, device, DTYPES[args.dtype])
        self.reps = args.reps
        self.batch = args.max_batch_size
        self.blobs = blobs
        self.pixels = [decode_image(blob) for blob in blobs]
        self.decode_s = statistics.median(time_decode(blob) for blob in blobs for _ in range(3))
        self.detections = self.run(self.pixels)

    def run(self, images: list[np.ndarray]) -> list[int]:
        info, options = self.backend.info, SegmentOptions()
        found = self.backend.infer(images, info.max_detections)
        kept = [select(d, options, info.score_threshold, info.max_detections) for d in found]
        return [len(build_result(info.name, d, options).detections) for d in kept]

    def from_pixels(self, number: int) -> None:
        self.run([self.pixels[number % len(self.pixels)]])

    def from_bytes(self, number: int) -> None:
        """What a served request does: decode the encoded image, then the same work."""
        self.run([decode_image(self.blobs[number % len(self.blobs)])])

    def timed(self, images: list[np.ndarray]) -> float:
        began = time.perf_counter()
        self.run(images)
        return time.perf_counter() - began

    def full_batch(self, number: int) -> list[np.ndarray]:
        """Batch ``number``: the next ``max_batch_size`` images, cycling through them."""
        count, batch = len(self.pixels), self.batch
        return [self.pixels[(number * batch + j) % count] for j in range(batch)]

    def batched_ips(self, batches: int = 4) -> float:
        """Images/s over ``batches`` full batches (one block of ``throughput_rounds``)."""
        began = time.perf_counter()
        for number in range(batches):
            self.run(self.full_batch(number))
        return batches * self.batch / (time.perf_counter() - began)

    def measure(self) -> Ceiling:
        count = len(self.pixels)
        batches = [self.full_batch(number) for number in range(4)]
        self.timed(batches[0])  # warm-up of the batched shapes
        latencies = [self.timed([self.pixels[i % count]]) for i in range(self.reps)]
        batched = [self.timed(batches[r % len(batches)]) for r in range(max(3, self.reps // 4))]
        return Ceiling(latencies, self.batch / statistics.median(batched))


def time_decode(blob: bytes) -> float:
    began = time.perf_counter()
    decode_image(blob)
    return time.perf_counter() - began
