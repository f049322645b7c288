"""A served model: its batcher, workers and health, and how it is described to clients."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from maskserve.batch_cost import BatchCostModel
from maskserve.batching import DynamicBatcher
from maskserve.cpu_share import CoreShare
from maskserve.health import ModelHealth
from maskserve.metrics import Metrics
from maskserve.models.base import ModelInfo
from maskserve.models.raw.signature import TensorSignature
from maskserve.repository import ModelEntry
from maskserve.settings import Settings
from maskserve.workers import BackendBuilder, Worker


@dataclass
class ServedModel:
    """A model of the repository with its batcher and workers (``info`` once loaded)."""

    entry: ModelEntry
    batcher: DynamicBatcher
    workers: list[Worker]
    info: ModelInfo | None = None
    ready: bool = False  # loaded and warmed up
    devices: list[str] = field(default_factory=list)
    health: ModelHealth | None = None
    signature: TensorSignature | None = None  # a tensor model's inputs and outputs

    @property
    def serving(self) -> bool:
        """Loaded, and its batches are not failing (see :mod:`maskserve.health`)."""
        return self.ready and (self.health is None or self.health.healthy)


def plan_served_model(
    entry: ModelEntry,
    devices: list[torch.device],
    settings: Settings,
    metrics: Metrics,
    build: BackendBuilder,
    core_share: CoreShare | None,
    health: ModelHealth,
    on_batch: Callable[[bool, str], object],
) -> ServedModel:
    """A model's batcher and its workers (``instances`` per device), not loaded yet."""
    cfg = entry.config
    cost = None
    tensors = entry.spec.family == "raw"  # a client's own tensors: no cost probe
    if settings.adaptive_batching and cfg.max_batch_size > 1 and not tensors:
        # a batch may take at most half the default deadline: one batch ahead of a
        # request still leaves it time for its own
        cost = BatchCostModel(cfg.max_batch_size, settings.request_timeout_s / 2)
    batcher = DynamicBatcher(
        entry.name,
        cfg.max_batch_size,
        cfg.max_queue_delay_ms,
        cfg.max_queue_size,
        metrics,
        cost_model=cost,
        max_queue_wait_s=settings.max_queue_wait_s or None,
        workers=len(devices) * cfg.instances,
        max_queue_wait_batches=settings.max_queue_wait_batches or None,
    )
    placements = [device for device in devices for _ in range(cfg.instances)]
    workers = [
        Worker(
            entry.spec,
            device,
            i,
            batcher,
            build,
            settings.torch_dtype,
            metrics,
            core_share=core_share,
            watchdog_s=settings.worker_watchdog_s or None,
            on_batch=on_batch,
        )
        for i, device in enumerate(placements)
    ]
    devices_used = [str(d) for d in devices]
    return ServedModel(entry, batcher, workers, devices=devices_used, health=health)


def describe(served: ServedModel, info: ModelInfo) -> dict[str, Any]:
    """The effective configuration (``GET /v1/models/{name}``, OIP's model config)."""
    cfg = served.entry.config
    return {
        "name": info.name,
        "family": info.family,
        "devices": list(served.devices),
        "dtype": info.dtype,
        "input_size": info.input_size,
        "instances_per_device": cfg.instances,
        "score_threshold": info.score_threshold,
        "max_detections": info.max_detections,
        "class_names": list(info.class_names),
        "batching": batching(served),
        "extra": {str(k): str(v) for k, v in info.extra.items()},
    }


def batching(served: ServedModel) -> dict[str, Any]:
    cfg = served.entry.config
    cost = served.batcher.cost_model
    return {
        "max_batch_size": cfg.max_batch_size,
        "max_queue_delay_ms": cfg.max_queue_delay_ms,
        "max_queue_size": cfg.max_queue_size,
        "adaptive": cost is not None,
        "chosen_batch_size": cost.limit if cost is not None else cfg.max_batch_size,
        "cost_ms_per_image": (
            {str(k): round(v, 3) for k, v in cost.per_image_ms().items()} if cost else {}
        ),
    }


def state_of(served: ServedModel, draining: bool) -> tuple[str, str]:
    """Repository-index state and reason of a loaded (or loading) model."""
    if served.ready and served.health is not None and not served.health.healthy:
        return "UNAVAILABLE", served.health.reason
    return ("READY" if served.serving and not draining else "LOADING"), ""
