"""Mask R-CNN configs as data: the published torchvision ones and maskserve's slim one.

A config names an ``arch`` (how the network is built) and the inference settings that
torchvision passes to ``MaskRCNN`` (sizes, thresholds). Published configs mirror
torchvision's builders and defaults (``../shared/reference/maskrcnn.md`` §1–2).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

from torchvision.models._meta import _COCO_CATEGORIES

from maskserve.models.yolact.config import BackboneConfig

ARCHS = ("resnet50_fpn", "resnet50_fpn_v2", "slim_resnet_fpn")
BATCH_PADDINGS = ("shared", "per_image")
UNUSED_LABEL = "N/A"


@dataclass(frozen=True)
class MaskRcnnConfig:
    """Architecture plus inference settings of one Mask R-CNN.

    ``class_names`` excludes the background: torchvision label ``l`` is class id
    ``l - 1``. Names equal to ``"N/A"`` (COCO's ten unused ids) are never reported.
    ``batchnorm_eps`` is the eps torchvision uses for the published weights (v1's
    COCO weights run with eps 0, see ``overwrite_eps``).

    ``batch_padding``: ``"shared"`` batches images of different sizes as torchvision does
    (one tensor padded to the largest, rounded up to 32), so a batch's answers equal
    torchvision's for the same list; the padding moves scores by ~1e-4 and can re-rank
    near ties, so an image's answer depends slightly on its batch-mates. ``"per_image"``
    pads each image as if alone and runs only equal padded shapes together: answers never
    depend on the batch, at the cost of one forward pass per distinct padded shape.
    """

    name: str
    arch: str
    class_names: tuple[str, ...]
    min_size: int = 800
    max_size: int = 1333
    rpn_pre_nms_top_n_test: int = 1000
    rpn_post_nms_top_n_test: int = 1000
    rpn_nms_thresh: float = 0.7
    box_score_thresh: float = 0.05
    box_nms_thresh: float = 0.5
    detections_per_img: int = 100
    mask_threshold: float = 0.5
    batch_padding: str = "shared"
    batchnorm_eps: float | None = None
    backbone: BackboneConfig | None = None
    fpn_channels: int = 256
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)
    representation_size: int = 1024
    mask_head_channels: tuple[int, ...] = (256, 256, 256, 256)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ValueError(f"unknown Mask R-CNN arch {self.arch!r}; known: {ARCHS}")
        if self.batch_padding not in BATCH_PADDINGS:
            raise ValueError(
                f"batch_padding must be one of {BATCH_PADDINGS}, not {self.batch_padding!r}"
            )
        if self.arch == "slim_resnet_fpn" and self.backbone is None:
            raise ValueError("arch 'slim_resnet_fpn' needs a [maskrcnn.backbone] table")

    @property
    def num_classes(self) -> int:
        """Classes including the background (torchvision's ``num_classes``)."""
        return len(self.class_names) + 1


COCO_NAMES: tuple[str, ...] = tuple(_COCO_CATEGORIES[1:])

CONFIGS: dict[str, MaskRcnnConfig] = {
    "maskrcnn_resnet50_fpn": MaskRcnnConfig(
        name="maskrcnn_resnet50_fpn", arch="resnet50_fpn", class_names=COCO_NAMES, batchnorm_eps=0.0
    ),
    "maskrcnn_resnet50_fpn_v2": MaskRcnnConfig(
        name="maskrcnn_resnet50_fpn_v2", arch="resnet50_fpn_v2", class_names=COCO_NAMES
    ),
}


def get_config(name: str) -> MaskRcnnConfig:
    if name not in CONFIGS:
        raise KeyError(f"unknown Mask R-CNN config {name!r}; known: {sorted(CONFIGS)}")
    return CONFIGS[name]


def config_to_dict(config: MaskRcnnConfig) -> dict[str, Any]:
    """A TOML-friendly table (tuples as lists, the backbone as a sub-table)."""
    out: dict[str, Any] = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if value is None or (f.name == "extra" and not value):
            continue
        if isinstance(value, BackboneConfig):
            value = {k.name: _plain(getattr(value, k.name)) for k in fields(value)}
        out[f.name] = _plain(value)
    return out


def config_from_dict(table: dict[str, Any]) -> MaskRcnnConfig:
    """The inverse of :func:`config_to_dict`; ``config = "<name>"`` starts from a published
    config and the other keys override it."""
    data = dict(table)
    base = get_config(data.pop("config")) if "config" in data else None
    known = {f.name for f in fields(MaskRcnnConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"[maskrcnn] has unknown keys {unknown}; known: {sorted(known)}")
    if "backbone" in data:
        data["backbone"] = BackboneConfig(
            **{k: tuple(v) if isinstance(v, list) else v for k, v in data["backbone"].items()}
        )
    data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
    if base is not None:
        return replace(base, **data)
    if "name" not in data:
        data["name"] = "maskrcnn"
    return MaskRcnnConfig(**data)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
