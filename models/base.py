"""What every model family provides to the server: a backend that turns images into Detections."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from maskserve.models.types import Detections


@dataclass(frozen=True)
class ModelInfo:
    """What clients may know about a loaded model."""

    name: str
    family: str
    class_names: tuple[str, ...]
    input_size: int
    device: str
    dtype: str
    score_threshold: float = 0.0
    max_detections: int = 100
    extra: dict[str, str] = field(default_factory=dict)


class Backend(Protocol):
    """A model instance bound to one device.

    ``infer`` runs the shared forward pass for a batch of RGB uint8 images; options
    that differ per request (thresholds, class filters) are applied afterwards by the
    caller, so any batch of requests can share one call.
    """

    info: ModelInfo

    def infer(self, images: Sequence[np.ndarray], max_detections: int) -> list[Detections]: ...
