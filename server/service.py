"""The one service every protocol calls: decode → batch → model → select → encode.

Decoding, per-request selection and RLE encoding run on a small thread pool (Pillow,
numpy and torch release the GIL; see benchmarks/bench_decode_pool.py for why threads
suffice), the forward pass on the model's workers, and only coordination on the event loop.
Selection and encoding travel with the request as its batch *finisher*: a worker with an
empty queue runs them straight after the forward pass, so a lone request skips a round
trip through the pool; under load they run on the pool, beside the next batch.

Errors are the domain errors of :mod:`maskserve.errors`.  Draining refuses new requests
with :class:`ModelNotReadyError` ("not ready" → 503 / UNAVAILABLE, so load balancers move
on), while overload (a full queue) is :class:`OverloadedError`, whose status is configurable.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import torch

from maskserve.auto_backend import build_any
from maskserve.cpu_share import CoreShare
from maskserve.errors import (
    DeadlineExceededError,
    InvalidOptionError,
    ModelNotFoundError,
    ModelNotReadyError,
)
from maskserve.health import PROBE_INTERVAL_S, ModelHealth
from maskserve.imageio import check_pixels, decode_image
from maskserve.inflight import InFlight, RequestAccounting
from maskserve.memory_release import MemoryRelease
from maskserve.metrics import Metrics
from maskserve.models.base import ModelInfo
from maskserve.models.raw.signature import TensorSignature
from maskserve.options import SegmentOptions, check_classes
from maskserve.pixel_budget import PixelBudget, header_pixels
from maskserve.repository import scan_repository
from maskserve.results import ImageResult, finish_result
from maskserve.served_model import ServedModel, describe, plan_served_model, state_of
from maskserve.settings import Settings
from maskserve.statistics import RequestTimes, Statistics
from maskserve.tensor_check import check_tensors
from maskserve.workers import BackendBuilder, available_cores, configure_cpu_threads

log = logging.getLogger(__name__)
T = TypeVar("T")


class SegmentationService:
    """Owns the models, their batchers and workers, and the decode/encode thread pool."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        build: BackendBuilder = build_any,
        io_threads: int | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self._build = build
        threads = io_threads or max(2, available_cores())
        self._pool = ThreadPoolExecutor(
            threads, thread_name_prefix="maskserve-io", initializer=_single_threaded_torch
        )
        self._models: dict[str, ServedModel] = {}
        self._core_share: CoreShare | None = None
        self._failures: dict[str, str] = {}
        self._started = False
        self._draining = False
        self.statistics = Statistics()
        self._inflight = InFlight()
        self._accounting = RequestAccounting(
            metrics, self.statistics, self._inflight, self._is_known
        )
        self._probes: set[asyncio.Task[None]] = set()
        self.memory = MemoryRelease.for_this_process(
            settings.release_memory_after_bytes, metrics.memory_trimmed
        )
        self._pixels = PixelBudget(settings.max_pixels_in_flight, self.memory)

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics) -> SegmentationService:
        return cls(settings, metrics)

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Read the repository, build every worker's model copy, warm up, start workers.

        Returns once every model is serving or has failed (failures are logged and
        reported by ``get_model``); ``ready`` is False until then.
        """
        scan = scan_repository(self.settings)
        self._failures.update(scan.failures)
        devices = [torch.device(name) for name in self.settings.devices]
        cpu_devices = sum(1 for d in devices if d.type == "cpu")
        cpu_workers = cpu_devices * sum(e.config.instances for e in scan.entries.values())
        if cpu_workers:
            # shared cores: every worker is built with all of them (ONNX Runtime sessions
            # keep the count they are built with) and CoreShare sets threads per batch
            configure_cpu_threads(1 if self.settings.share_cpu_cores else cpu_workers)
        self._core_share = CoreShare(available_cores()) if self.settings.share_cpu_cores else None
        for name, entry in scan.entries.items():
            health = ModelHealth(name, self.metrics)
            on_batch = functools.partial(self._batch_done, name, health)
            self._models[name] = plan_served_model(
                entry,
                devices,
                self.settings,
                self.metrics,
                self._build,
                self._core_share,
                health,
                on_batch,
            )
        await asyncio.gather(*(self._load(served) for served in self._models.values()))
        self._started = True
        serving = [name for name, served in self._models.items() if served.ready]
        if serving:
            log.info("serving models: %s", ", ".join(serving))
        else:
            log.error("no model could be loaded from %s", self.settings.model_repository)

    def _batch_done(self, name: str, health: ModelHealth, ok: bool, reason: str) -> None:
        if health.batch_done(ok, reason):  # just turned unhealthy: probe until it recovers
            self._probes.add(asyncio.create_task(self._probe(name, health)))

    async def _probe(self, name: str, health: ModelHealth) -> None:
        served = self._models.get(name)
        while served is not None and not health.healthy and not self._draining:
            await asyncio.sleep(PROBE_INTERVAL_S)  # a period between probes, not a sync
            for worker in served.workers:
                if worker.retired or not await worker.probe():
                    continue
                health.recovered()
                break

    async def _load(self, served: ServedModel) -> None:
        name = served.entry.name
        outcomes = await asyncio.gather(*(w.load() for w in served.workers), return_exceptions=True)
        errors = [o for o in outcomes if isinstance(o, BaseException)]
        if errors:
            reason = f"{type(errors[0]).__name__}: {errors[0]}"
            log.error("model %r failed to load: %s", name, reason)
            self._failures[name] = reason
            del self._models[name]
            served.batcher.close(ModelNotFoundError(f"model {name!r} failed to load: {reason}"))
            await asyncio.gather(*(w.stop() for w in served.workers))
            return
        info = outcomes[0].info
        served.signature = getattr(outcomes[0], "signature", None)
        threshold = served.entry.config.score_threshold
        served.info = dataclasses.replace(
            info,
            device=",".join(served.devices),
            score_threshold=info.score_threshold if threshold is None else threshold,
        )
        for worker in served.workers:
            worker.start()
        served.ready = True
        if served.health is not None:
            served.health.publish()

    @property
    def ready(self) -> bool:
        """True once every loaded model warmed up, at least one model serves, not draining."""
        return (
            self._started
            and not self._draining
            and bool(self._models)
            and all(served.serving for served in self._models.values())
        )

    async def drain(self, grace_s: float) -> None:
        """Refuse new requests (``ready`` turns False) and wait up to ``grace_s`` for the
        in-flight ones to finish."""
        self._draining = True
        for served in self._models.values():
            served.batcher.stop_waiting()  # nobody new is coming: run forming batches now
        await self._inflight.wait_idle(grace_s)

    async def stop(self) -> None:
        """Fail whatever is still queued, stop the workers, release the thread pool."""
        self._draining = True
        for probe in self._probes:
            probe.cancel()
        for served in self._models.values():
            served.batcher.close(ModelNotReadyError("the server is shutting down"))
        await asyncio.gather(*(w.stop() for s in self._models.values() for w in s.workers))
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.memory.close()

    # -- model metadata --------------------------------------------------------------

    def list_models(self) -> list[ModelInfo]:
        """The models that loaded (and are serving), by name."""
        return [s.info for _, s in sorted(self._models.items()) if s.info is not None]

    def model_states(self) -> list[tuple[str, str, str]]:
        """(name, state, reason) of every model the repository named: READY, LOADING (not
        warmed up yet, or the server is draining) or UNAVAILABLE (failed to load)."""
        states = [
            (name, *state_of(served, self._draining)) for name, served in self._models.items()
        ]
        states += [(name, "UNAVAILABLE", reason) for name, reason in self._failures.items()]
        return sorted(states)

    def get_model(self, name: str) -> ModelInfo:
        served = self._lookup(name)
        assert served.info is not None
        return served.info

    def tensor_signature(self, name: str) -> TensorSignature | None:
        """A tensor model's inputs and outputs; None for a model that takes images."""
        return self._lookup(name).signature

    def model_config(self, name: str) -> dict[str, Any]:
        """Effective configuration of a model, for ``GET /v1/models/{name}``."""
        info = self.get_model(name)  # NotFound / NotReady first
        return describe(self._models[name], info)

    def _lookup(self, name: str) -> ServedModel:
        """The loaded model ``name``; NotFound (naming a load error) or NotReady otherwise."""
        served = self._models.get(name)
        if served is not None and served.serving:
            return served
        if served is not None and served.ready and served.health is not None:
            raise ModelNotReadyError(
                f"model {name!r} is not ready: {served.health.reason}; probing it"
            )
        if name in self._failures:
            raise ModelNotFoundError(f"model {name!r} failed to load: {self._failures[name]}")
        if served is not None or not self._started:
            raise ModelNotReadyError(f"model {name!r} is not loaded yet; the server is starting")
        available = ", ".join(sorted(self._models)) or "none"
        raise ModelNotFoundError(f"unknown model {name!r}; available: {available}")

    # -- requests --------------------------------------------------------------------

    async def segment(
        self,
        model: str,
        image: bytes | np.ndarray,
        options: SegmentOptions,
        *,
        deadline: float | None = None,
        protocol: str = "rest",
        priority: int = 0,
        held: bool = False,
    ) -> ImageResult:
        """Segment one image with ``model``: encoded bytes (decoded on the pool) or pixels
        already decoded (RGB uint8 [H, W, 3]). ``deadline`` is ``time.monotonic()`` seconds
        (None: the server's ``request_timeout_s``; an earlier client deadline wins).
        ``held``: work taken in with :meth:`hold` before a drain, served while draining."""
        async with self._accounting.request(model, protocol) as began:
            return await self._segment(model, image, options, deadline, began, priority, held)

    async def infer_tensors(
        self,
        model: str,
        inputs: Mapping[str, np.ndarray],
        *,
        deadline: float | None = None,
        protocol: str = "oip",
        priority: int = 0,
    ) -> dict[str, np.ndarray]:
        """Run a tensor model (family ``raw``) on one request's named arrays, through the
        model's batcher like any request; its outputs by name."""
        async with self._accounting.request(model, protocol) as began:
            served = self._serving(model)
            if served.signature is None:
                raise InvalidOptionError(
                    f"model {model!r} takes encoded images (input IMAGE), not tensors"
                )
            check_tensors(served.signature, inputs)
            deadline = self._deadline(began, deadline)
            try:
                async with asyncio.timeout(deadline - time.monotonic()):
                    outcome = await served.batcher.submit(dict(inputs), deadline, None, priority)
            except TimeoutError:
                raise DeadlineExceededError(
                    f"deadline exceeded after {time.monotonic() - began:.3f} s (model {model!r})"
                ) from None
            total = time.monotonic() - began
            queued, ran = outcome.queue_s, outcome.inference_s
            times = RequestTimes(total, queued, 0.0, ran, 0.0, outcome.batch_size)
            self.statistics.record_success(model, times)
            return outcome.detections

    def _is_known(self, model: str) -> bool:
        return model in self._models or model in self._failures

    def _deadline(self, began: float, deadline: float | None) -> float:
        """The client's deadline, capped by ``request_timeout_s``; refused if already past."""
        limit = began + self.settings.request_timeout_s
        deadline = limit if deadline is None else min(deadline, limit)
        if deadline <= time.monotonic():
            raise DeadlineExceededError("the request's deadline had passed on arrival")
        return deadline

    def count_refused(self, model: str, protocol: str, code: str) -> None:
        """Count an answer the protocol layer gave before the request reached
        :meth:`segment` (wrong content type, body too large, invalid option)."""
        self._accounting.refused(model, protocol, code)

    async def _segment(
        self,
        model: str,
        image: bytes | np.ndarray,
        options: SegmentOptions,
        deadline: float | None,
        began: float,
        priority: int = 0,
        held: bool = False,
    ) -> ImageResult:
        served = self._lookup(model) if held else self._serving(model)
        assert served.info is not None
        if served.signature is not None:
            raise InvalidOptionError(
                f"model {model!r} is a tensor model: send its input tensors through the "
                "Open Inference Protocol (/v2), not an image"
            )
        check_classes(served.info, options)
        deadline = self._deadline(began, deadline)
        remaining, limit = deadline - time.monotonic(), self.settings.max_pixels
        decoded = isinstance(image, np.ndarray)
        count = check_pixels(image, limit) if decoded else header_pixels(image)
        served.batcher.admit(deadline)  # refused before decoding: cheap under overload
        try:
            with self._pixels.reserve(count, model):
                async with asyncio.timeout(remaining):
                    with served.batcher.preparing():
                        pixels = (
                            image if decoded else await self._offload(decode_image, image, limit)
                        )
                    decode_s = time.monotonic() - began
                    finish = functools.partial(finish_result, served.info, options)
                    outcome = await served.batcher.submit(pixels, deadline, finish, priority)
                    finished = outcome.finished  # done on an idle worker's thread
                    if finished is None:
                        finished = await self._offload(finish, outcome.detections)
                    result, post_s = finished
        except TimeoutError:
            raise DeadlineExceededError(
                f"deadline exceeded after {time.monotonic() - began:.3f} s (model {model!r})"
            ) from None
        self.metrics.postprocess_duration.labels(model).observe(post_s)
        timings = {
            "queue": outcome.queue_s,
            "inference": outcome.inference_s,
            "postprocess": post_s,
            "total": time.monotonic() - began,
        }
        result = dataclasses.replace(result, timings=timings)
        times = RequestTimes(
            timings["total"],
            outcome.queue_s,
            decode_s,
            outcome.inference_s,
            post_s,
            outcome.batch_size,
        )
        self.statistics.record_success(model, times)
        return result

    def _serving(self, model: str) -> ServedModel:
        if self._draining:
            raise ModelNotReadyError("the server is draining and accepts no new requests")
        return self._lookup(model)

    async def _offload(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    async def offload(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the decode/encode thread pool (protocol layers encode their
        answers there, e.g. the REST overlay pictures), keeping the event loop free."""
        return await self._offload(fn, *args)

    @property
    def in_flight(self) -> int:
        """Requests being served and stream frames held (see :meth:`hold`)."""
        return self._inflight.count

    @property
    def draining(self) -> bool:
        return self._draining

    def hold(self) -> None:
        """Count work a protocol took in before a drain (a stream's received frame, until
        its answer is written) as in flight, so :meth:`drain` waits for it; :meth:`release`
        ends it."""
        self._inflight.hold()

    def release(self) -> None:
        self._inflight.release()


def _single_threaded_torch() -> None:
    """Post-processing tensors are small: keep the I/O threads from starting OpenMP teams.

    Every thread that runs a parallel torch op gets its own OpenMP team; once the teams
    together outnumber the cores, OpenMP stops spinning between parallel regions and the
    workers' forward passes slow down (docs/benchmarks.md, serving). The setting is
    per thread, so the workers keep their share.
    """
    torch.set_num_threads(1)
