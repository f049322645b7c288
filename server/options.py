"""Per-request options, applied after the shared forward pass."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from maskserve.errors import InvalidOptionError

MaskFormat = Literal["rle", "none"]
MAX_DETECTIONS_LIMIT = 100


@dataclass(frozen=True)
class SegmentOptions:
    """What a caller may choose per request.

    ``score_threshold``/``max_detections`` of None mean the model's defaults;
    ``classes`` keeps only those class ids (None keeps all).
    """

    score_threshold: float | None = None
    max_detections: int | None = None
    classes: frozenset[int] | None = None
    mask_format: MaskFormat = "rle"

    def __post_init__(self) -> None:
        if self.score_threshold is not None and not 0.0 <= self.score_threshold <= 1.0:
            raise InvalidOptionError(
                f"score_threshold must be in [0, 1], got {self.score_threshold}"
            )
        if self.max_detections is not None and not 0 <= self.max_detections <= MAX_DETECTIONS_LIMIT:
            raise InvalidOptionError(
                f"max_detections must be in [0, {MAX_DETECTIONS_LIMIT}], got {self.max_detections}"
            )
        if self.mask_format not in ("rle", "none"):
            raise InvalidOptionError(
                f"mask_format must be 'rle' or 'none', got {self.mask_format!r}"
            )
