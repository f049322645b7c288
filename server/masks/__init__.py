"""Mask stage: cropped low-resolution masks -> COCO compressed RLE (pycocotools-compatible)."""

from maskserve.masks.encode import (
    EncodedMasks,
    StagePolicy,
    detection_masks,
    encode_box_masks_with_areas,
    encode_detections,
    encode_full_masks,
    encode_masks,
    encode_masks_with_areas,
    full_box_masks,
    full_masks,
    mask_areas,
)
from maskserve.masks.rle import Rle
from maskserve.masks.rle_string import compress_counts, decompress_counts

__all__ = [
    "EncodedMasks",
    "Rle",
    "StagePolicy",
    "compress_counts",
    "decompress_counts",
    "detection_masks",
    "encode_box_masks_with_areas",
    "encode_detections",
    "encode_full_masks",
    "encode_masks",
    "encode_masks_with_areas",
    "full_box_masks",
    "full_masks",
    "mask_areas",
]
