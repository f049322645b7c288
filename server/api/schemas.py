"""Pydantic shapes of the REST responses — for the OpenAPI document at ``/docs``.

Handlers return ``result_json(ImageResult)`` and the service's dicts as they are (no second
validation pass on the hot path); these models describe that JSON.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable reason, e.g. invalid_image")
    message: str


class ErrorBody(BaseModel):
    """Every ``/v1`` refusal and failure (and unknown paths): 4xx or 5xx."""

    error: ErrorDetail


class OipErrorBody(BaseModel):
    """A ``/v2`` (Open Inference Protocol) refusal: the protocol's flat error object."""

    error: str = Field(description="what went wrong, for people")


class OipReady(BaseModel):
    """``/v2/health/ready``: 200 when ready, 503 with ``ready: false`` otherwise."""

    ready: bool


class OipModelReady(BaseModel):
    """``/v2/models/{model}/ready``: 200, else 404 (unknown) or 503 with ``ready: false``."""

    name: str
    ready: bool


class Mask(BaseModel):
    size: list[int] = Field(description="[height, width]")
    counts: str = Field(description="COCO compressed RLE (pycocotools `counts`)")


class PolygonPart(BaseModel):
    """One 8-connected part of a mask: its outline minus its holes."""

    exterior: list[float] = Field(
        description="flat ring [x1, y1, x2, y2, ...] as COCO polygons (not closed by "
        "repeating the first point), clockwise on screen; pixel (x, y) covers "
        "[x, x+1] × [y, y+1]"
    )
    holes: list[list[float]] = Field(description="flat rings cut out of the exterior")


class PolygonMask(BaseModel):
    """``mask_format=polygon``: the mask is the union of its parts, largest first. Each
    ring is simplified to ``polygon_tolerance`` pixels; ``pycocotools.mask.frPyObjects``
    rasterises a ring as it is (tolerance 0 gives the RLE mask back exactly)."""

    type: Literal["polygon"]
    size: list[int] = Field(description="[height, width]")
    polygons: list[PolygonPart]


class Detection(BaseModel):
    class_id: int
    label: str
    score: float
    box: list[float] = Field(description="[x1, y1, x2, y2] in image pixels")
    mask: Mask | PolygonMask | None = Field(
        description="COCO RLE (mask_format=rle), polygons (polygon), null (none)"
    )
    mask_score: float | None = None


class ImageSize(BaseModel):
    width: int
    height: int


class Timings(BaseModel):
    queue: float
    inference: float
    postprocess: float
    total: float


class SegmentResponse(BaseModel):
    model: str
    image: ImageSize
    detections: list[Detection] = Field(description="in descending score")
    timings: Timings = Field(description="seconds per stage")


class Batching(BaseModel):
    max_batch_size: int = Field(description="the upper bound the configuration sets")
    max_queue_delay_ms: float
    max_queue_size: int
    adaptive: bool = Field(False, description="batch size chosen from measured costs")
    chosen_batch_size: int = Field(0, description="the size batches may grow to now")
    cost_ms_per_image: dict[str, float] = Field(
        default_factory=dict, description="measured ms per image, by batch size"
    )


class ModelDetail(BaseModel):
    name: str
    family: str
    devices: list[str]
    dtype: str
    input_size: int = Field(description="network input side in pixels")
    instances_per_device: int
    score_threshold: float = Field(description="default when the request sets none")
    max_detections: int = Field(description="default when the request sets none")
    class_names: list[str] = Field(description="index = class_id")
    batching: Batching
    extra: dict[str, str] = Field(
        default_factory=dict, description="backend details: config, backend, provider, ..."
    )


class ModelList(BaseModel):
    models: list[ModelDetail]


class Status(BaseModel):
    status: str
