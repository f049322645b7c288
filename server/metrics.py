"""Prometheus metrics on a private registry (no global state, so tests and apps don't clash).

Request-path series are plain collectors updated by the service, batcher and workers;
GPU memory and utilisation are read at scrape time by :class:`GpuCollector`, which adds
nothing on a host without CUDA (and leaves out the NVML series when ``pynvml`` from
``nvidia-ml-py`` is not importable).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import torch
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

NAMESPACE = "maskserve"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)


class Metrics:
    """Every ``maskserve_*`` collector, registered on ``self.registry``."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None, gpu: bool = True) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.requests_total = Counter(
            "requests",
            "Requests answered, by model, protocol and status (ok or the error code).",
            ["model", "protocol", "status"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.request_duration = self._histogram(
            "request_duration_seconds",
            "Time from receiving the image bytes to the finished result (any status).",
            ["model", "protocol"],
        )
        self.queue_duration = self._histogram(
            "queue_duration_seconds", "Time a request waited in its model's batch queue."
        )
        self.inference_duration = self._histogram(
            "inference_duration_seconds",
            "Time of one batch's forward pass, detection and mask assembly.",
            ["model", "device"],
        )
        self.postprocess_duration = self._histogram(
            "postprocess_duration_seconds", "Per-request option filtering and RLE encoding time."
        )
        self.batch_size = self._histogram(
            "batch_size", "Requests per executed batch.", buckets=BATCH_BUCKETS
        )
        self.queue_depth = self._gauge("queue_depth", "Requests waiting in the batch queue.")
        self.inflight = self._gauge(
            "inflight_requests", "Requests being processed (decode to response)."
        )
        self.model_ready = self._gauge(
            "model_ready",
            "1 while the model serves; 0 while loading or after its batches kept failing.",
        )
        self.batch_size_limit = self._gauge(
            "batch_size_limit",
            "Largest batch the adaptive batcher currently forms (max_batch_size when off).",
        )
        self.intra_op_threads = self._gauge(
            "intra_op_threads", "CPU threads the model's last batch ran with (core sharing)."
        )
        self.auth_failures = Counter(
            "auth_failures_total",
            "Requests refused for a missing or wrong API key, by protocol.",
            ["protocol"],
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.memory_trims = Counter(
            "memory_trims",
            "Times free memory was given back to the kernel after large requests "
            "(release_memory_after_bytes).",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        self.memory_returned = Counter(
            "memory_returned_bytes",
            "Resident memory those trims gave back to the kernel.",
            namespace=NAMESPACE,
            registry=self.registry,
        )
        ProcessCollector(namespace=NAMESPACE, registry=self.registry)
        if gpu:
            self.registry.register(GpuCollector())

    def memory_trimmed(self, returned_bytes: int) -> None:
        self.memory_trims.inc()
        self.memory_returned.inc(returned_bytes)

    def _histogram(
        self,
        name: str,
        documentation: str,
        labels: list[str] | None = None,
        buckets: tuple[float, ...] = LATENCY_BUCKETS,
    ) -> Histogram:
        return Histogram(
            name,
            documentation,
            labels or ["model"],
            namespace=NAMESPACE,
            buckets=buckets,
            registry=self.registry,
        )

    def _gauge(self, name: str, documentation: str) -> Gauge:
        return Gauge(name, documentation, ["model"], namespace=NAMESPACE, registry=self.registry)

    def render(self) -> bytes:
        """The text exposition format (``content_type``)."""
        return generate_latest(self.registry)


class GpuCollector(Collector):
    """Per CUDA device: torch allocator memory, plus NVML memory/utilisation when available."""

    def __init__(self) -> None:
        self._nvml: Any = None
        self._nvml_failed = False

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        if not torch.cuda.is_available():
            return
        count = torch.cuda.device_count()
        allocated = _family("gpu_memory_allocated_bytes", "Bytes held by tensors (torch).")
        reserved = _family("gpu_memory_reserved_bytes", "Bytes reserved by torch's allocator.")
        for index in range(count):
            label = [f"cuda:{index}"]
            allocated.add_metric(label, float(torch.cuda.memory_allocated(index)))
            reserved.add_metric(label, float(torch.cuda.memory_reserved(index)))
        yield allocated
        yield reserved
        yield from self._collect_nvml(count)

    def _collect_nvml(self, count: int) -> Iterator[GaugeMetricFamily]:
        nvml = self._load_nvml()
        if nvml is None:
            return
        used = _family("gpu_memory_used_bytes", "Device memory in use, all processes (NVML).")
        total = _family("gpu_memory_total_bytes", "Device memory size (NVML).")
        util = _family("gpu_utilization_ratio", "Fraction of time a kernel ran (NVML).")
        for index in range(count):
            try:
                handle = _nvml_handle(nvml, index)
                memory = nvml.nvmlDeviceGetMemoryInfo(handle)
                rates = nvml.nvmlDeviceGetUtilizationRates(handle)
            except Exception as exc:  # NVML errors are many classes; a scrape must not fail
                log.debug("NVML read failed for cuda:%d: %s", index, exc)
                continue
            label = [f"cuda:{index}"]
            used.add_metric(label, float(memory.used))
            total.add_metric(label, float(memory.total))
            util.add_metric(label, rates.gpu / 100.0)
        yield from (used, total, util)

    def _load_nvml(self) -> Any:
        if self._nvml is None and not self._nvml_failed:
            try:
                import pynvml

                pynvml.nvmlInit()
                self._nvml = pynvml
            except Exception as exc:  # ImportError or NVMLError: serve without NVML series
                log.info("GPU utilisation metrics off (NVML unavailable: %s)", exc)
                self._nvml_failed = True
        return self._nvml


def _nvml_handle(nvml: Any, index: int) -> Any:
    """The NVML handle of torch's device ``index`` (matched by UUID: CUDA_VISIBLE_DEVICES
    may renumber devices, NVML does not)."""
    uuid = getattr(torch.cuda.get_device_properties(index), "uuid", None)
    if uuid is not None:
        text = str(uuid)
        return nvml.nvmlDeviceGetHandleByUUID(text if text.startswith("GPU-") else f"GPU-{text}")
    return nvml.nvmlDeviceGetHandleByIndex(index)


def _family(name: str, documentation: str) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{NAMESPACE}_{name}", documentation, labels=["device"])
