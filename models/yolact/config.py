"""YOLACT configurations as data, and the registry of named configs.

Every published config of dbolya/yolact is an instance of :class:`YolactConfig`;
a new config is a new entry in :data:`CONFIGS`, never a new class.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

COCO_CLASSES: tuple[str, ...] = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)

BASE_ANCHOR_SCALES: tuple[float, ...] = (24, 48, 96, 192, 384)
PLUS_SCALE_STEPS: tuple[float, ...] = (1.0, 2 ** (1 / 3), 2 ** (2 / 3))


@dataclass(frozen=True)
class BackboneConfig:
    """Backbone architecture.

    ``kind`` is "resnet" (bottleneck when ``bottleneck`` else basic blocks) or
    "darknet". ``widths`` are the stage input widths of the blocks (planes) for
    ResNet, the stage output channels for DarkNet. ``selected_layers`` are the stage
    indices fed to the FPN. ``deform_layers``/``deform_interval`` follow YOLACT++.
    """

    kind: str
    layers: tuple[int, ...]
    widths: tuple[int, ...] = (64, 128, 256, 512)
    bottleneck: bool = True
    stem_width: int = 64
    selected_layers: tuple[int, ...] = (1, 2, 3)
    deform_layers: tuple[int, ...] = (0, 0, 0, 0)
    deform_interval: int = 1

    @property
    def out_channels(self) -> tuple[int, ...]:
        """Channels of every stage's output."""
        if self.kind == "darknet":
            return self.widths
        expansion = 4 if self.bottleneck else 1
        return tuple(w * expansion for w in self.widths)


@dataclass(frozen=True)
class YolactConfig:
    """Everything that defines a YOLACT network and its inference behaviour."""

    name: str
    backbone: BackboneConfig
    max_size: int = 550
    class_names: tuple[str, ...] = COCO_CLASSES
    fpn_channels: int = 256
    proto_channels: int = 256
    head_channels: int = 256
    mask_dim: int = 32
    # Per FPN level (P3..P7): the anchor scales in pixels at max_size.
    anchor_scales: tuple[tuple[float, ...], ...] = tuple((s,) for s in BASE_ANCHOR_SCALES)
    aspect_ratios: tuple[float, ...] = (1.0, 0.5, 2.0)
    square_anchors: bool = True
    use_maskiou: bool = False
    # With use_maskiou, False (the reference's default, and what its evaluation uses:
    # eval.py's prep_metrics / COCO json) keeps Detect's box scores and order, with
    # score × maskiou in mask_scores. True: score := score × maskiou and detections
    # re-sorted by it, as eval.py's image and video display paths force it.
    rescore_bbox: bool = False
    has_semantic_seg: bool = True
    # RGB mean and std; DarkNet uses x/255 instead (``normalize=False``).
    pixel_mean: tuple[float, float, float] = (123.68, 116.78, 103.94)
    pixel_std: tuple[float, float, float] = (58.40, 57.12, 57.38)
    normalize: bool = True
    # Eval thresholds (Detect and postprocess) of the reference.
    conf_thresh: float = 0.05
    nms_thresh: float = 0.5
    nms_top_k: int = 200
    max_num_detections: int = 100
    mask_threshold: float = 0.5
    extra: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def num_classes(self) -> int:
        """Number of foreground classes (the network adds one for background)."""
        return len(self.class_names)

    @property
    def priors_per_location(self) -> int:
        return len(self.anchor_scales[0]) * len(self.aspect_ratios)

    def with_overrides(self, **changes: object) -> YolactConfig:
        return replace(self, **changes)  # type: ignore[arg-type]


def _scaled(max_size: int) -> tuple[tuple[float, ...], ...]:
    return tuple((float(int(s * max_size / 550)),) for s in BASE_ANCHOR_SCALES)


def _plus_scales() -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(s * step for step in PLUS_SCALE_STEPS) for s in BASE_ANCHOR_SCALES)


RESNET101 = BackboneConfig(kind="resnet", layers=(3, 4, 23, 3))
RESNET50 = BackboneConfig(kind="resnet", layers=(3, 4, 6, 3))
DARKNET53 = BackboneConfig(
    kind="darknet",
    layers=(1, 2, 8, 8, 4),
    widths=(64, 128, 256, 512, 1024),
    stem_width=32,
    selected_layers=(2, 3, 4),
)

YOLACT_BASE = YolactConfig(name="yolact_base", backbone=RESNET101)
_PLUS = {"anchor_scales": _plus_scales(), "square_anchors": False, "use_maskiou": True}

CONFIGS: dict[str, YolactConfig] = {
    c.name: c
    for c in (
        YOLACT_BASE,
        replace(YOLACT_BASE, name="yolact_im400", max_size=400, anchor_scales=_scaled(400)),
        replace(YOLACT_BASE, name="yolact_im700", max_size=700, anchor_scales=_scaled(700)),
        replace(YOLACT_BASE, name="yolact_resnet50", backbone=RESNET50),
        replace(YOLACT_BASE, name="yolact_darknet53", backbone=DARKNET53, normalize=False),
        replace(
            YOLACT_BASE,
            name="yolact_plus_base",
            backbone=replace(RESNET101, deform_layers=(0, 4, 23, 3), deform_interval=3),
            **_PLUS,
        ),
        replace(
            YOLACT_BASE,
            name="yolact_plus_resnet50",
            backbone=replace(RESNET50, deform_layers=(0, 4, 6, 3), deform_interval=1),
            **_PLUS,
        ),
    )
}

PUBLISHED_CONFIG_NAMES: tuple[str, ...] = tuple(CONFIGS)


def register_config(config: YolactConfig) -> None:
    """Add a config to the registry (a later registration of the same name wins)."""
    CONFIGS[config.name] = config


def get_config(name: str) -> YolactConfig:
    """Look a config up by name, with a clear error listing the known ones."""
    try:
        return CONFIGS[name]
    except KeyError:
        known = ", ".join(sorted(CONFIGS))
        raise KeyError(f"unknown YOLACT config {name!r}; known configs: {known}") from None
