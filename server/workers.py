"""Workers: each owns one model copy on one device and runs its batches on its own thread.

The worker's loop is an asyncio task (it pulls batches from the model's batcher and
resolves the requests' futures on the event loop); the compute runs on the worker's
single dedicated thread, where torch releases the GIL, so several workers — of one model
or of several — compute in parallel while the event loop keeps serving.

CPU threads: with ``share_cpu_cores`` (the default) every CPU worker is built with all the
cores and sets its intra-op threads before each batch from the number of workers busy at
that moment (:mod:`maskserve.cpu_share`).  Without it the service calls
:func:`configure_cpu_threads` once, before any model is built, with the total number of
CPU workers, and each worker keeps ``max(1, cores // cpu_workers)`` intra-op threads.

Batch size: with ``adaptive_batching`` (the default) the worker measures batch costs after
warm-up and feeds every batch's time to the model's :class:`~maskserve.batch_cost.
BatchCostModel`, which sets how large the batcher lets the next batch grow.

CUDA: each worker creates its own ``torch.cuda.Stream`` and runs its batches on it, so
two workers on one GPU overlap copies and kernels; the stream is synchronised before the
results leave the worker, so post-processing on other threads sees finished tensors.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import torch

from maskserve.batching import BatchItem, DynamicBatcher, ItemOutcome
from maskserve.cpu_share import CoreShare
from maskserve.errors import InferenceError, ModelNotReadyError
from maskserve.health import MAX_REPLACEMENTS, WorkerHungError
from maskserve.metrics import Metrics
from maskserve.models.base import Backend
from maskserve.models.registry import ModelSpec
from maskserve.models.types import Detections

log = logging.getLogger(__name__)

BackendBuilder = Callable[[ModelSpec, torch.device, torch.dtype], Backend]
T = TypeVar("T")
WARMUP_GRAY = 114


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def configure_cpu_threads(cpu_workers: int, cores: int | None = None) -> int:
    """Give each of ``cpu_workers`` concurrent workers an equal share of the cores."""
    threads = max(1, (cores or available_cores()) // max(1, cpu_workers))
    torch.set_num_threads(threads)
    log.info("torch intra-op threads: %d (for %d CPU workers)", threads, cpu_workers)
    return threads


class Worker:
    """One model copy on one device, consuming batches from its model's batcher."""

    def __init__(
        self,
        spec: ModelSpec,
        device: torch.device,
        index: int,
        batcher: DynamicBatcher,
        build: BackendBuilder,
        dtype: torch.dtype = torch.float32,
        metrics: Metrics | None = None,
        core_share: CoreShare | None = None,
        clock: Callable[[], float] = time.perf_counter,
        watchdog_s: float | None = None,
        on_batch: Callable[[bool, str], object] | None = None,
    ) -> None:
        self.spec = spec
        self.device = device
        self.name = f"{spec.name}@{device}#{index}"
        self.batcher = batcher
        self._build = build
        self._dtype = dtype
        self._metrics = metrics
        self._core_share = core_share if device.type == "cpu" else None
        self._clock = clock  # injected by tests that measure batch costs deterministically
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"maskserve-{self.name}")
        self._stream: torch.cuda.Stream | None = None
        self._task: asyncio.Task[None] | None = None
        self.backend: Backend | None = None
        self.warmed_up = False
        self._watchdog_s = watchdog_s  # see maskserve.health
        self._on_batch = on_batch
        self.replacements = 0
        self.retired = False

    async def load(self) -> Backend:
        """Build this worker's model copy on its thread and warm it up with a dummy batch."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._load_and_warm_up)

    def _load_and_warm_up(self) -> Backend:
        began = time.perf_counter()
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            self._stream = torch.cuda.Stream(self.device)
        self.backend = self._build(self.spec, self.device, self._dtype)
        dummy = warmup_input(self.backend)
        self._infer([dummy])
        if self.batcher.cost_model is not None:
            self.probe_batch_costs(dummy)
        self.warmed_up = True
        log.info(
            "worker %s ready (loaded and warmed up in %.2f s)",
            self.name,
            time.perf_counter() - began,
        )
        return self.backend

    def probe_batch_costs(self, image: Any) -> None:
        """Time batches of 1, 2, 4, … of ``image`` (each shape run once untimed first);
        stop once a size costs more per image than the size before (see batch_cost)."""
        model = self.batcher.cost_model
        assert model is not None
        previous: float | None = None
        for size in model.sizes:
            if model.measured(size):  # another worker of this model measured it
                continue
            images = [image] * size
            if size > 1:
                self._infer(images)
            seconds = self._infer(images)[1]
            model.observe(size, seconds)
            if previous is not None and seconds / size > previous:
                break
            previous = seconds / size
        self._report_limit()

    def _report_limit(self) -> None:
        model = self.batcher.cost_model
        if self._metrics is not None and model is not None:
            self._metrics.batch_size_limit.labels(self.spec.name).set(model.limit)

    def start(self) -> None:
        """Begin consuming batches (after :meth:`load`)."""
        self._task = asyncio.create_task(self._run(), name=f"worker {self.name}")

    async def _run(self) -> None:
        while not self.retired:
            batch = await self.batcher.next_batch()
            if batch is None:
                return
            await self.execute(batch)
            # not held while waiting for the next batch: its decoded images (108 MB for a
            # 6000² photo) are freed with their requests, not when the next batch comes
            del batch

    async def execute(self, batch: list[BatchItem]) -> None:
        """Run one batch; a failure fails only this batch's requests."""
        loop = asyncio.get_running_loop()
        try:
            work = loop.run_in_executor(self._thread, self._compute, batch)
            found, seconds, finished = await self._guarded(work, len(batch))
        except asyncio.CancelledError:
            for item in batch:
                item.fail(ModelNotReadyError(f"model {self.spec.name!r} is shutting down"))
            raise
        except Exception as exc:
            error = self._describe_failure(exc, len(batch))
            log.error("worker %s: batch of %d failed: %s", self.name, len(batch), error)
            for item in batch:
                item.fail(error)
            self._report(False, str(error))
            if isinstance(exc, WorkerHungError):
                await self._replace()
            return
        self._report(True, "")
        if self._metrics is not None:
            self._metrics.inference_duration.labels(self.spec.name, str(self.device)).observe(
                seconds
            )
            self._metrics.batch_size.labels(self.spec.name).observe(len(batch))
        if self.batcher.cost_model is not None:
            self.batcher.cost_model.observe(len(batch), seconds)
            self._report_limit()
        for item, detections, done in zip(batch, found, finished, strict=True):
            if isinstance(done, Exception):
                item.fail(done)
                continue
            queued = item.started_at - item.enqueued_at
            item.resolve(ItemOutcome(detections, queued, seconds, len(batch), done))

    def _compute(
        self, batch: list[BatchItem]
    ) -> tuple[list[Detections], float, list[object | Exception | None]]:
        """On the worker thread: the forward pass, then — if no request is waiting — each
        item's finisher (see :mod:`maskserve.batching`); a finisher's error is its item's."""
        found, seconds = self._infer([item.image for item in batch])
        if len(found) != len(batch):
            raise InferenceError(
                f"model {self.spec.name!r} returned {len(found)} results for a batch of "
                f"{len(batch)} images"
            )
        if self.batcher.depth > 0:
            return found, seconds, [None] * len(batch)
        return (
            found,
            seconds,
            [_run_finisher(item, d) for item, d in zip(batch, found, strict=True)],
        )

    def _infer(self, images: Sequence[np.ndarray]) -> tuple[list[Detections], float]:
        """On the worker thread: the backend's shared forward pass for ``images``."""
        assert self.backend is not None, "worker used before load()"
        began = self._clock()
        limit = self.backend.info.max_detections
        try:
            if self._stream is not None:
                with torch.cuda.stream(self._stream):
                    found = self.backend.infer(images, limit)
                self._stream.synchronize()
            elif self._core_share is not None:
                with self._core_share.running() as threads:
                    if self._metrics is not None:
                        self._metrics.intra_op_threads.labels(self.spec.name).set(threads)
                    found = self.backend.infer(images, limit)
            else:
                found = self.backend.infer(images, limit)
        except torch.OutOfMemoryError:
            if self.device.type == "cuda":
                torch.cuda.empty_cache()  # give the failed batch's blocks back before the next
            raise
        return list(found), self._clock() - began

    async def _guarded(self, work: asyncio.Future[T], size: int) -> T:
        """``work``'s result, or WorkerHungError past the watchdog (the thread keeps it)."""
        if self._watchdog_s is None:
            return await work
        try:
            return await asyncio.wait_for(asyncio.shield(work), self._watchdog_s)
        except TimeoutError:
            raise WorkerHungError(
                f"model {self.spec.name!r}: a batch of {size} did not finish within the "
                f"watchdog's {self._watchdog_s:g} s on {self.device}; the worker is replaced"
            ) from None

    def _report(self, ok: bool, reason: str) -> None:
        if self._on_batch is not None:
            self._on_batch(ok, reason)

    async def _replace(self) -> None:
        """A fresh thread and model copy; the hung thread is abandoned (see health)."""
        self.replacements += 1
        hung, self._thread = (
            self._thread,
            ThreadPoolExecutor(1, thread_name_prefix=f"maskserve-{self.name}-r{self.replacements}"),
        )
        hung.shutdown(wait=False, cancel_futures=True)
        if self.replacements > MAX_REPLACEMENTS:
            log.error("worker %s hung %d times: retired", self.name, self.replacements)
            self.retired = True
            return
        try:
            await self.load()
        except Exception:
            log.exception("worker %s could not be rebuilt: retired", self.name)
            self.retired = True

    async def probe(self) -> bool:
        """One warm-up image through this worker (guarded): whether it succeeded."""
        dummy = warmup_input(self.backend)
        loop = asyncio.get_running_loop()
        try:
            await self._guarded(loop.run_in_executor(self._thread, self._infer, [dummy]), 1)
        except Exception as exc:
            log.info("worker %s: probe failed: %s", self.name, exc)
            return False
        return True

    def _describe_failure(self, exc: Exception, size: int) -> InferenceError:
        if isinstance(exc, InferenceError):
            return exc
        if isinstance(exc, torch.OutOfMemoryError) and self.device.type == "cuda":
            first_line = str(exc).splitlines()[0] if str(exc) else ""
            return InferenceError(
                f"CUDA out of memory on {self.device} running a batch of {size} images of "
                f"model {self.spec.name!r}: {first_line}"
            )
        return InferenceError(
            f"inference of model {self.spec.name!r} failed on {self.device} "
            f"(batch of {size}): {type(exc).__name__}: {exc}"
        )

    async def stop(self) -> None:
        """Stop consuming, fail a batch in flight, and release the thread and model copy."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        self._thread.shutdown(wait=False, cancel_futures=True)
        self.backend = None
        self.warmed_up = False


def warmup_input(backend: Backend | None) -> Any:
    """A request for warm-ups and probes: the backend's own (tensor models say what they
    take), else a gray square image of the model's input size."""
    make = getattr(backend, "warmup_input", None)
    if make is not None:
        return make()
    size = max(1, int(backend.info.input_size)) if backend is not None else 1
    return np.full((size, size, 3), WARMUP_GRAY, dtype=np.uint8)


def _run_finisher(item: BatchItem, detections: Detections) -> object | Exception | None:
    if item.finish is None or not item.live:
        return None
    try:
        return item.finish(detections)
    except Exception as exc:  # the request's own failure, reported to it alone
        return exc
