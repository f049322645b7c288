"""A served model: its batcher, workers and health, and how it is described to clients."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from maskserve.batching import DynamicBatcher
from maskserve.health import ModelHealth
from maskserve.models.base import ModelInfo
from maskserve.repository import ModelEntry
from maskserve.workers import Worker


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

    @property
    def serving(self) -> bool:
        """Loaded, and its batches are not failing (see :mod:`maskserve.health`)."""
        return self.ready and (self.health is None or self.health.healthy)


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
