"""Writes a fixed synthetic data set to disk in COCO instance-segmentation format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from maskserve.models.synthetic.generator import Sample, generate_sample
from maskserve.models.synthetic.shapes import SHAPE_CLASSES

IMAGES_DIR = "images"
ANNOTATIONS_FILE = "annotations.json"


def encode_mask(mask: np.ndarray) -> dict[str, Any]:
    """A bool [H, W] mask as COCO compressed RLE with ``counts`` as str (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    return {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")}


def categories() -> list[dict[str, Any]]:
    """COCO categories: id = class id + 1 (COCO ids start at 1), name from SHAPE_CLASSES."""
    return [
        {"id": i + 1, "name": name, "supercategory": "shape"}
        for i, name in enumerate(SHAPE_CLASSES)
    ]


def _annotations(sample: Sample, image_id: int, first_id: int) -> list[dict[str, Any]]:
    anns = []
    for k, (mask, class_id, box) in enumerate(
        zip(sample.masks, sample.class_ids, sample.boxes, strict=True)
    ):
        x1, y1, x2, y2 = (float(v) for v in box)
        anns.append(
            {
                "id": first_id + k,
                "image_id": image_id,
                "category_id": int(class_id) + 1,
                "segmentation": encode_mask(mask),
                "area": int(np.count_nonzero(mask)),
                "bbox": [x1, y1, x2 - x1, y2 - y1],
                "iscrowd": 0,
            }
        )
    return anns


def write_coco_dataset(out_dir: Path, num_images: int, seed: int, height: int, width: int) -> Path:
    """Generates ``num_images`` samples from ``np.random.default_rng(seed)`` and saves them.

    Layout: ``out_dir/images/000000.png`` … (RGB PNG, index from 0) and
    ``out_dir/annotations.json``. Image ids start at 1 (file ``000000.png`` is image 1);
    ``file_name`` is relative to ``out_dir/images``. Returns the annotations path.
    """
    out_dir = Path(out_dir)
    image_dir = out_dir / IMAGES_DIR
    image_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for index in range(num_images):
        sample = generate_sample(rng, height, width)
        file_name = f"{index:06d}.png"
        bgr = cv2.cvtColor(sample.image, cv2.COLOR_RGB2BGR)
        if not cv2.imwrite(str(image_dir / file_name), bgr):
            raise OSError(f"could not write {image_dir / file_name}")
        image_id = index + 1
        images.append({"id": image_id, "file_name": file_name, "height": height, "width": width})
        annotations.extend(_annotations(sample, image_id, len(annotations) + 1))
    dataset = {
        "info": {"description": "maskserve synthetic shapes", "seed": seed},
        "images": images,
        "categories": categories(),
        "annotations": annotations,
    }
    path = out_dir / ANNOTATIONS_FILE
    path.write_text(json.dumps(dataset))
    return path
