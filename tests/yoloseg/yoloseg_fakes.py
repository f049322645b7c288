"""A hand-built stand-in for an Ultralytics YOLO-seg ONNX export, with known answers.

:class:`FakeYoloSeg` has the export's I/O signature — ``images`` [B, 3, S, S] →
``output0`` [B, 4 + nc + 32, A] (A = Σ (S / s)² for s in 8, 16, 32) and ``output1``
[B, 32, S / 4, S / 4] — but its outputs are buffers encoding :class:`Scene` s chosen by
the test. Which scene a batch item gets is read from the letterboxed input's centre
pixel (always image content): scene k's image is uniformly filled with grey level
``SCENE_LEVELS[k]``.

Masks are known in closed form. Proto channels 0..4 are ``1, u, v, u², v²`` (``u = x/S``,
``v = y/S`` at the prototype pixel centres, in input pixels), so coefficients can encode
any axis-aligned ellipse as ``k·(1 − ((x−cx)/a)² − ((y−cy)/b)²)`` (an ellipse in the
original image is one in the letterboxed input too); channels 5.. are indicators of
rectangles whose edges lie on prototype-pixel edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from maskserve.models.yoloseg.preprocess import Letterbox, letterbox_geometry

IMGSZ = 320
NUM_MASKS = 32
NAMES = {0: "ellipse", 1: "rectangle", 2: "cut ellipse"}
SCENE_LEVELS = (40, 80, 120)
STEEPNESS = 3.0  # logit = STEEPNESS at the ellipse centre, 0 on its boundary
FIRST_RECT_CHANNEL = 5


def num_anchors(size: int = IMGSZ) -> int:
    return sum((size // s) ** 2 for s in (8, 16, 32))


@dataclass
class FakeObject:
    """One encoded detection. ``box`` in original pixels; ``region`` per ``shape``:

    * ``"ellipse"``: (cx, cy, a, b) in original pixels;
    * ``"rect"``: (x1, y1, x2, y2) in *input* pixels, multiples of 4 (proto edges).
    """

    box: tuple[float, float, float, float]
    class_id: int
    score: float
    shape: str
    region: tuple[float, float, float, float]


@dataclass
class Scene:
    image_hw: tuple[int, int]
    objects: list[FakeObject]
    expected: list[int] = field(default_factory=list)  # indices kept after conf + NMS

    def geometry(self) -> Letterbox:
        return letterbox_geometry(self.image_hw, (IMGSZ, IMGSZ))

    def image(self, k: int) -> np.ndarray:
        return np.full((*self.image_hw, 3), SCENE_LEVELS[k], dtype=np.uint8)


def to_input(box: Letterbox, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Original → input pixels with the resize's exact per-axis scale."""
    return xs * box.scale_x + box.pad_left, ys * box.scale_y + box.pad_top


def rect_in_original(box: Letterbox, region: tuple[float, ...]) -> tuple[float, ...]:
    x1, y1, x2, y2 = region
    return (
        (x1 - box.pad_left) / box.scale_x,
        (y1 - box.pad_top) / box.scale_y,
        (x2 - box.pad_left) / box.scale_x,
        (y2 - box.pad_top) / box.scale_y,
    )


def base_protos(size: int = IMGSZ) -> torch.Tensor:
    """[32, S/4, S/4]: channels 1, u, v, u², v² at the proto pixel centres; the rest 0."""
    side = size // 4
    centres = (torch.arange(side, dtype=torch.float64) + 0.5) * 4 / size
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    protos = torch.zeros(NUM_MASKS, side, side, dtype=torch.float64)
    protos[0], protos[1], protos[2], protos[3], protos[4] = 1, u, v, u * u, v * v
    return protos


def ellipse_coeffs(box: Letterbox, region: tuple[float, ...], size: int = IMGSZ) -> torch.Tensor:
    """Coefficients on channels 0..4 for the ellipse ``region`` (original pixels)."""
    cx, cy, a, b = region
    (cxi,), (cyi,) = to_input(box, np.array([cx]), np.array([cy]))
    alpha = (size / (a * box.scale_x)) ** 2
    beta = (size / (b * box.scale_y)) ** 2
    u0, v0 = cxi / size, cyi / size
    coeffs = torch.zeros(NUM_MASKS, dtype=torch.float64)
    coeffs[:5] = torch.tensor(
        [1 - alpha * u0**2 - beta * v0**2, 2 * alpha * u0, 2 * beta * v0, -alpha, -beta]
    )
    return coeffs * STEEPNESS


def encode_scene(scene: Scene, size: int = IMGSZ) -> tuple[torch.Tensor, torch.Tensor]:
    """(output0 [4 + nc + 32, A], output1 [32, S/4, S/4]) for one scene."""
    box = scene.geometry()
    nc = len(NAMES)
    out0 = torch.zeros(4 + nc + NUM_MASKS, num_anchors(size), dtype=torch.float64)
    out0[4 : 4 + nc] = 0.01
    protos = base_protos(size)
    rect_channel = FIRST_RECT_CHANNEL
    for anchor, obj in enumerate(scene.objects, start=7):
        anchor *= 37  # spread over the anchors
        (x1, x2), (y1, y2) = to_input(box, np.array(obj.box[0::2]), np.array(obj.box[1::2]))
        out0[:4, anchor] = torch.tensor([(x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1])
        out0[4 + obj.class_id, anchor] = obj.score
        if obj.shape == "ellipse":
            out0[4 + nc :, anchor] = ellipse_coeffs(box, obj.region, size)
        else:
            rx1, ry1, rx2, ry2 = (int(v) // 4 for v in obj.region)
            protos[rect_channel, ry1:ry2, rx1:rx2] = 1.0
            out0[4 + nc + 0, anchor] = -5.0
            out0[4 + nc + rect_channel, anchor] = 10.0
            rect_channel += 1
    return out0.float(), protos.float()


class FakeYoloSeg(nn.Module):
    """Constant outputs per scene, selected by the input's centre grey level."""

    def __init__(self, scenes: list[Scene], end2end: bool = False) -> None:
        super().__init__()
        encoded = [encode_scene(s) for s in scenes]
        out0 = torch.stack([e[0] for e in encoded])
        if end2end:
            out0 = torch.stack(
                [end2end_rows(s, e[0]) for s, e in zip(scenes, encoded, strict=True)]
            )
        self.register_buffer("out0", out0)
        self.register_buffer("out1", torch.stack([e[1] for e in encoded]))
        levels = torch.tensor(SCENE_LEVELS[: len(scenes)], dtype=torch.float32)
        self.register_buffer("levels", levels)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        centre = images[:, 0, IMGSZ // 2, IMGSZ // 2] * 255.0
        onehot = ((centre[:, None] - self.levels[None]).abs() < 2.0).float()  # [B, K]
        k = self.levels.shape[0]
        out0 = (onehot @ self.out0.reshape(k, -1)).reshape(-1, *self.out0.shape[1:])
        out1 = (onehot @ self.out1.reshape(k, -1)).reshape(-1, *self.out1.shape[1:])
        return out0, out1


def end2end_rows(scene: Scene, dense: torch.Tensor, rows: int = 20) -> torch.Tensor:
    """The [rows, 6 + 32] end-to-end layout of a scene's expected detections (zero-padded)."""
    nc = len(NAMES)
    out = torch.zeros(rows, 6 + NUM_MASKS)
    anchors = [(7 + index) * 37 for index in scene.expected]  # as encode_scene spreads them
    for i, anchor in enumerate(anchors):
        cx, cy, w, h = dense[:4, anchor].tolist()
        cls = int(dense[4 : 4 + nc, anchor].argmax())
        out[i, :6] = torch.tensor([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, 0, cls])
        out[i, 4] = dense[4 + cls, anchor]
        out[i, 6:] = dense[4 + nc :, anchor]
    return out


def export(
    module: nn.Module,
    path: Path,
    dynamic_batch: bool,
    metadata: dict[str, str] | None = None,
) -> Path:
    """``torch.onnx.export`` (legacy exporter, opset 17) + Ultralytics-style metadata."""
    dummy = torch.zeros(1, 3, IMGSZ, IMGSZ)
    axes = {"images": {0: "batch"}, "output0": {0: "batch"}, "output1": {0: "batch"}}
    torch.onnx.export(
        module.eval(),
        (dummy,),
        str(path),
        input_names=["images"],
        output_names=["output0", "output1"],
        opset_version=17,
        dynamic_axes=axes if dynamic_batch else None,
        dynamo=False,
    )
    model = onnx.load(str(path))
    for key, value in (metadata or ultralytics_metadata()).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))
    return path


def ultralytics_metadata(**changes: str) -> dict[str, str]:
    """Metadata as Ultralytics' exporter writes it (``str`` of Python values)."""
    meta = {
        "description": "fake YOLO-seg for tests",
        "author": "Ultralytics",
        "stride": "32",
        "task": "segment",
        "batch": "1",
        "imgsz": str([IMGSZ, IMGSZ]),
        "names": str(NAMES),
        "args": str({"batch": 1, "nms": None, "dynamic": False}),
        "channels": "3",
        "end2end": "False",
    }
    meta.update(changes)
    return meta


def default_scenes() -> list[Scene]:
    """Two non-square images: masks inside their box, rectangles, a box-cut ellipse,
    a duplicate (NMS), a low score (conf) and the same box in another class (kept)."""
    first = Scene(
        image_hw=(480, 640),
        objects=[
            FakeObject((110, 170, 290, 310), 0, 0.9, "ellipse", (200, 240, 90, 70)),
            FakeObject((400, 80, 560, 240), 1, 0.8, "rect", (200, 80, 280, 160)),
            FakeObject((420, 330, 560, 440), 2, 0.7, "ellipse", (480, 380, 100, 60)),
            FakeObject((113, 172, 293, 312), 0, 0.6, "ellipse", (200, 240, 90, 70)),
            FakeObject((10, 10, 50, 50), 1, 0.2, "ellipse", (30, 30, 20, 20)),
            FakeObject((110, 170, 290, 310), 1, 0.5, "ellipse", (200, 240, 90, 70)),
        ],
        expected=[0, 1, 2, 5],
    )
    second = Scene(image_hw=(300, 200), objects=[], expected=[0, 1, 2])
    rect = rect_in_original(second.geometry(), (120, 20, 200, 100))
    second.objects = [
        FakeObject((40, 50, 160, 250), 0, 0.95, "ellipse", (100, 150, 60, 100)),
        FakeObject(rect, 2, 0.85, "rect", (120, 20, 200, 100)),
        FakeObject((30, 215, 110, 280), 2, 0.4, "ellipse", (60, 240, 50, 40)),
    ]
    return [first, second]


def expected_mask(scene: Scene, obj: FakeObject) -> np.ndarray:
    """The ideal mask in the original image: the region (pixel centres) within the box."""
    height, width = scene.image_hw
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    if obj.shape == "ellipse":
        cx, cy, a, b = obj.region
        inside = ((xs - cx) / a) ** 2 + ((ys - cy) / b) ** 2 < 1
    else:
        x1, y1, x2, y2 = rect_in_original(scene.geometry(), obj.region)
        inside = (xs >= x1) & (xs < x2) & (ys >= y1) & (ys < y2)
    x1, y1, x2, y2 = obj.box
    return inside & (xs >= x1) & (xs < x2) & (ys >= y1) & (ys < y2)
