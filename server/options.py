"""Per-request options, applied after the shared forward pass."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, get_args

from maskserve.errors import InvalidOptionError

if TYPE_CHECKING:
    from maskserve.models.base import ModelInfo

MaskFormat = Literal["rle", "none", "polygon"]
MASK_FORMATS: tuple[str, ...] = get_args(MaskFormat)
MAX_DETECTIONS_LIMIT = 100
DEFAULT_POLYGON_TOLERANCE = 1.0
MAX_POLYGON_TOLERANCE = 100.0


@dataclass(frozen=True)
class SegmentOptions:
    """What a caller may choose per request.

    ``score_threshold``/``max_detections`` of None mean the model's defaults;
    ``classes`` keeps only those class ids (None keeps all); ``polygon_tolerance`` (pixels,
    Douglas–Peucker; 0 = the exact pixel boundary) applies to ``mask_format="polygon"``.
    """

    score_threshold: float | None = None
    max_detections: int | None = None
    classes: frozenset[int] | None = None
    mask_format: MaskFormat = "rle"
    polygon_tolerance: float = DEFAULT_POLYGON_TOLERANCE

    def __post_init__(self) -> None:
        if self.score_threshold is not None and not 0.0 <= self.score_threshold <= 1.0:
            raise InvalidOptionError(
                f"score_threshold must be in [0, 1], got {self.score_threshold}"
            )
        if self.max_detections is not None and not 0 <= self.max_detections <= MAX_DETECTIONS_LIMIT:
            raise InvalidOptionError(
                f"max_detections must be in [0, {MAX_DETECTIONS_LIMIT}], got {self.max_detections}"
            )
        if self.mask_format not in MASK_FORMATS:
            raise InvalidOptionError(
                f"mask_format must be one of {', '.join(MASK_FORMATS)}, got {self.mask_format!r}"
            )
        tolerance = self.polygon_tolerance
        if not (math.isfinite(tolerance) and 0.0 <= tolerance <= MAX_POLYGON_TOLERANCE):
            raise InvalidOptionError(
                f"polygon_tolerance must be in [0, {MAX_POLYGON_TOLERANCE:g}] pixels, "
                f"got {tolerance}"
            )


def check_classes(info: ModelInfo, options: SegmentOptions) -> None:
    """``classes`` must be class ids of the model."""
    if options.classes is None:
        return
    count = len(info.class_names)
    bad = sorted(c for c in options.classes if not 0 <= c < count)
    if bad:
        raise InvalidOptionError(
            f"classes {bad} are not class ids of model {info.name!r}; valid ids are 0..{count - 1}"
        )
