"""Synthetic instance-segmentation data: occluding shapes on cluttered backgrounds.

``generate_sample`` makes one image with exact visible-part masks on the fly (a few ms
at 320×320); ``write_coco_dataset`` saves a fixed set in COCO format for evaluation.
"""

from maskserve.models.synthetic.coco import categories, encode_mask, write_coco_dataset
from maskserve.models.synthetic.generator import Sample, generate_sample, make_batch
from maskserve.models.synthetic.shapes import SHAPE_CLASSES

__all__ = [
    "SHAPE_CLASSES",
    "Sample",
    "categories",
    "encode_mask",
    "generate_sample",
    "make_batch",
    "write_coco_dataset",
]
