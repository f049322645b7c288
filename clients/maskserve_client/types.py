"""Typed results, shared by the REST and gRPC clients.

Masks stay run-length encoded until asked for: :meth:`Detection.mask` decodes one to a
numpy array on each call, so a result with many detections costs nothing until used.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maskserve_client import rle
from maskserve_client.errors import MaskserveClientError
from maskserve_client.polygon import PolygonMask

Box = tuple[float, float, float, float]

#: The server's shipped model, used when a call names none.
DEFAULT_MODEL = "yolact_shapes"


@dataclass(frozen=True)
class Rle:
    """A run-length encoded mask: compressed ``counts`` (str/bytes) or raw run lengths."""

    height: int
    width: int
    counts: str | bytes | np.ndarray

    def decode(self) -> np.ndarray:
        """bool [H, W] (a Fortran-ordered array)."""
        return rle.decode_counts(self.counts, (self.height, self.width))

    def area(self) -> int:
        return rle.area({"counts": self.counts})

    def compressed(self) -> str:
        """The pycocotools ``counts`` string, compressing raw runs if needed."""
        if isinstance(self.counts, str):
            return self.counts
        if isinstance(self.counts, bytes):
            return self.counts.decode("ascii")
        return rle.compress(self.counts)

    def to_json(self) -> dict[str, Any]:
        return {"size": [self.height, self.width], "counts": self.compressed()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Rle:
        height, width = data["size"]
        counts = data["counts"]
        if not isinstance(counts, str | bytes):
            counts = np.asarray(counts, dtype=np.int64)
        return cls(height=int(height), width=int(width), counts=counts)


@dataclass(frozen=True)
class Detection:
    class_id: int
    label: str
    score: float
    #: ``(x1, y1, x2, y2)`` in pixels of the original image.
    box: Box
    #: None when the request asked for ``mask_format="none"`` or ``"polygon"``.
    rle: Rle | None = None
    mask_score: float | None = None
    #: Set instead of ``rle`` when the request asked for ``mask_format="polygon"``.
    polygons: PolygonMask | None = None

    @property
    def has_mask(self) -> bool:
        return self.rle is not None or self.polygons is not None

    def mask(self) -> np.ndarray:
        """Decode the mask to bool [H, W] (decoded afresh on each call: keep the result);
        polygons are filled at pixel centres."""
        if self.rle is not None:
            return self.rle.decode()
        if self.polygons is not None:
            return self.polygons.decode()
        raise ValueError("this detection carries no mask (requested with mask_format none)")

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "class_id": self.class_id,
            "label": self.label,
            "score": self.score,
            "box": list(self.box),
            "mask": _mask_json(self.rle, self.polygons),
        }
        if self.mask_score is not None:
            data["mask_score"] = self.mask_score
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Detection:
        x1, y1, x2, y2 = (float(v) for v in data["box"])
        mask = data.get("mask")
        polygon = isinstance(mask, Mapping) and mask.get("type") == "polygon"
        mask_score = data.get("mask_score")
        return cls(
            class_id=int(data["class_id"]),
            label=str(data.get("label", data["class_id"])),
            score=float(data["score"]),
            box=(x1, y1, x2, y2),
            rle=Rle.from_json(mask) if mask and not polygon else None,
            mask_score=None if mask_score is None else float(mask_score),
            polygons=PolygonMask.from_json(mask) if mask and polygon else None,
        )


def _mask_json(rle: Rle | None, polygons: PolygonMask | None) -> dict[str, Any] | None:
    if rle is not None:
        return rle.to_json()
    return None if polygons is None else polygons.to_json()


@dataclass(frozen=True)
class SegmentResult:
    model: str
    width: int
    height: int
    #: In descending score.
    detections: list[Detection]
    #: Seconds per server stage: ``queue``, ``inference``, ``postprocess``, ``total``.
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The REST response schema (also for results that came over gRPC)."""
        data: dict[str, Any] = {
            "model": self.model,
            "image": {"width": self.width, "height": self.height},
            "detections": [d.to_json() for d in self.detections],
        }
        if self.timings:
            data["timings"] = dict(self.timings)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SegmentResult:
        image = data.get("image", {})
        return cls(
            model=str(data.get("model", "")),
            width=int(image.get("width", 0)),
            height=int(image.get("height", 0)),
            detections=[Detection.from_json(d) for d in data.get("detections", [])],
            timings={str(k): float(v) for k, v in (data.get("timings") or {}).items()},
        )


@dataclass(frozen=True)
class Batching:
    max_batch_size: int
    max_queue_delay_ms: float
    max_queue_size: int
    instances: int

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Batching:
        return cls(
            max_batch_size=int(data.get("max_batch_size", 0)),
            max_queue_delay_ms=float(data.get("max_queue_delay_ms", 0.0)),
            max_queue_size=int(data.get("max_queue_size", 0)),
            instances=int(data.get("instances", 0)),
        )


@dataclass(frozen=True)
class ModelInfo:
    """What the server says about a model; ``raw`` keeps every field it sent.

    REST sends ``score_threshold``/``max_detections`` and ``instances_per_device`` where
    gRPC sends ``default_*`` and ``batching.instances``; both read into the same fields.
    """

    name: str
    family: str = ""
    #: Index = class id.
    class_names: tuple[str, ...] = ()
    input_size: int = 0
    devices: tuple[str, ...] = ()
    dtype: str = ""
    default_score_threshold: float | None = None
    default_max_detections: int | None = None
    batching: Batching | None = None
    extra: dict[str, str] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelInfo:
        devices = tuple(str(d) for d in data.get("devices", ()))
        threshold = data.get("default_score_threshold", data.get("score_threshold"))
        max_dets = data.get("default_max_detections", data.get("max_detections"))
        batching = data.get("batching")
        if isinstance(batching, Mapping) and "instances" not in batching:
            per_device = int(data.get("instances_per_device", 1))
            batching = {**batching, "instances": per_device * len(devices)}
        return cls(
            name=str(data["name"]),
            family=str(data.get("family", "")),
            class_names=tuple(str(c) for c in data.get("class_names", ())),
            input_size=int(data.get("input_size", 0)),
            devices=devices,
            dtype=str(data.get("dtype", "")),
            default_score_threshold=None if threshold is None else float(threshold),
            default_max_detections=None if max_dets is None else int(max_dets),
            batching=Batching.from_json(batching) if isinstance(batching, Mapping) else None,
            extra={str(k): str(v) for k, v in (data.get("extra") or {}).items()},
            raw=dict(data),
        )


@dataclass(frozen=True)
class StreamResult:
    """One frame's outcome on a stream, in the order the frames were sent."""

    frame_id: int
    #: Set when the frame succeeded.
    result: SegmentResult | None = None
    #: Set when this frame failed; the stream itself carries on.
    error: MaskserveClientError | None = None
    #: The server dropped the frame as stale (``skip_stale``): neither result nor error.
    skipped: bool = False
    #: Seconds from handing the frame to gRPC to receiving its result (client-measured).
    latency_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.result is not None
