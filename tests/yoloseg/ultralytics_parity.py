"""maskserve's YOLO-seg answers vs Ultralytics' own ``YOLO(model.onnx).predict`` (test-only).

Ultralytics is AGPL and only ever imported here, by tests. Run as a script to print the
figures for fixture files::

    .venv/bin/python tests/yoloseg/ultralytics_parity.py tests/yoloseg/fixtures/*.onnx
"""

from __future__ import annotations

import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

FIXTURES = Path(__file__).parent / "fixtures"


def offline_env() -> None:
    """Ultralytics' switches that keep it from downloading or installing anything."""
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "False")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    os.environ.setdefault("YOLO_CONFIG_DIR", tempfile.mkdtemp(prefix="yolo-config-"))


def import_ultralytics() -> Any:
    """Import Ultralytics without keeping its process-wide patches.

    Importing it replaces ``PIL.Image.open`` (with a wrapper that tries to install
    ``pi-heif`` whenever Pillow cannot identify an image) and ``torch.save``. Left in
    place, the server under test in the same pytest process would answer an undecodable
    upload with that wrapper's ModuleNotFoundError instead of its own 400.
    """
    import torch
    from PIL import Image

    offline_env()
    image_open, torch_save = Image.open, torch.save
    try:
        import ultralytics
        from ultralytics import YOLO  # noqa: F401  (its lazy import patches too)
    finally:
        Image.open, torch.save = image_open, torch_save
    return ultralytics


def parity_images(count: int = 6, seed: int = 7) -> list[np.ndarray]:
    """Synthetic scenes (RGB) of assorted sizes and aspect ratios, odd padding included."""
    from maskserve.models.synthetic.generator import generate_sample

    rng = np.random.default_rng(seed)
    sizes = [(320, 320), (240, 320), (333, 251), (480, 640), (201, 397), (512, 288)]
    return [generate_sample(rng, *sizes[i % len(sizes)]).image for i in range(count)]


@dataclass
class Parity:
    """Figures of one comparison; ``problems`` lists what differs beyond tolerance."""

    detections: int = 0
    score_diffs: list[float] = field(default_factory=list)
    box_diffs: list[float] = field(default_factory=list)
    ious: list[float] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if not self.ious:
            return f"{self.detections} detections; problems: {self.problems}"
        return (
            f"{self.detections} detections; max |score diff| {max(self.score_diffs):.2e}; "
            f"max box diff {max(self.box_diffs):.3f} px; mask IoU min {min(self.ious):.4f} "
            f"median {float(np.median(self.ious)):.4f}; problems: {len(self.problems)}"
        )


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def ultralytics_predict(onnx: Path, image: np.ndarray, conf: float, iou: float):
    """Ultralytics' (boxes, scores, classes, masks[N, H, W] bool) for an RGB image."""
    model = import_ultralytics().YOLO(str(onnx), task="segment")
    result = model.predict(
        image[:, :, ::-1].copy(), retina_masks=True, conf=conf, iou=iou, verbose=False
    )[0]
    boxes = result.boxes
    h, w = image.shape[:2]
    masks = (
        result.masks.data.cpu().numpy() > 0.5
        if result.masks is not None
        else np.zeros((0, h, w), dtype=bool)
    )
    return (
        boxes.xyxy.cpu().numpy(),
        boxes.conf.cpu().numpy(),
        boxes.cls.cpu().numpy().astype(int),
        masks,
    )


def maskserve_predict(backend, image: np.ndarray):
    """maskserve's (boxes, scores, classes, masks) through the server's own mask encoder."""
    from pycocotools import mask as mask_utils

    from maskserve.masks.encode import encode_detections

    found = backend.infer([image], 1000)[0]
    rles = encode_detections(found).rles
    h, w = image.shape[:2]
    masks = (
        np.stack([mask_utils.decode(r).astype(bool) for r in rles])
        if rles
        else np.zeros((0, h, w), dtype=bool)
    )
    return found.boxes.numpy(), found.scores.numpy(), found.class_ids.numpy(), masks


def compare(
    onnx: Path, images: list[np.ndarray], conf: float, iou: float, backend_class: Any = None
) -> Parity:
    """Both sides on every image, detections matched in score order.

    ``backend_class`` (default :class:`YolosegBackend`) lets a script measure another
    implementation, e.g. an older copy of the family, the same way.
    """
    from maskserve.models.yoloseg.backend import YolosegBackend

    offline_env()
    backend = (backend_class or YolosegBackend)(onnx, overrides={"conf": conf, "iou": iou})
    out = Parity()
    for k, image in enumerate(images):
        ub, us, uc, um = ultralytics_predict(onnx, image, conf, iou)
        mb, ms, mc, mm = maskserve_predict(backend, image)
        if len(us) != len(ms) or not np.array_equal(uc, mc):
            out.problems.append(f"image {k}: classes {uc.tolist()} vs {mc.tolist()}")
            continue
        out.detections += len(us)
        for i in range(len(us)):
            out.score_diffs.append(float(abs(us[i] - ms[i])))
            out.box_diffs.append(float(np.abs(ub[i] - mb[i]).max()))
            out.ious.append(_iou(um[i], mm[i]))
    return out


def main(paths: list[str]) -> int:
    images = parity_images()
    for path in paths:
        result = compare(Path(path), images, conf=0.25, iou=0.7)
        print(f"{path}: {result.summary()}")
        for problem in result.problems:
            print("   ", problem)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    raise SystemExit(main(sys.argv[1:] or [str(p) for p in sorted(FIXTURES.glob("*.onnx"))]))
