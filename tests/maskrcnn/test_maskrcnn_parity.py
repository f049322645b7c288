"""Our batched predictor + box-local encoder against torchvision's own eager forward.

The reference is ``model(images)``: torchvision's whole path on the same list of images of
different sizes (one batch padded to the largest), including the full-image
``paste_masks_in_image``, thresholded ``> 0.5`` as its COCO evaluation does. Ours is
:class:`MaskRcnnBackend.infer` on the same batch (it stops before the paste) followed by
the server's box-local ``encode_box_masks_with_areas``, decoded by pycocotools. With
``batch_padding = "per_image"`` an image's answer must instead equal torchvision's for
that image alone, whatever it is batched with (the last test).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from maskrcnn_helpers import (
    Found,
    as_tensors,
    assert_same_found,
    calm_masks,
    confident,
    randomize_norms,
    served_found,
    torchvision_found,
)
from torchvision.models.detection import MaskRCNN

from maskserve.models.maskrcnn.backend import MaskRcnnBackend
from maskserve.models.maskrcnn.config import MaskRcnnConfig, get_config
from maskserve.models.maskrcnn.network import build_maskrcnn

SMALL = {"min_size": 256, "max_size": 320}


def ours(model: MaskRCNN, config: MaskRcnnConfig, images: list[np.ndarray]) -> list[Found]:
    # NCHW like torchvision's own forward: channels-last rounds differently (near-ties of
    # random weights re-rank); tests/maskrcnn/test_maskrcnn_fast_paths.py covers it
    backend = MaskRcnnBackend(
        model, config, "parity", torch.device("cpu"), torch.float32, channels_last=False
    )
    return [served_found(d) for d in backend.infer(images, config.detections_per_img)]


def theirs(model: MaskRCNN, config: MaskRcnnConfig, images: list[np.ndarray]) -> list[Found]:
    """torchvision's forward on the whole list (its own batching of mixed sizes)."""
    with torch.inference_mode():
        outputs = model.eval()(as_tensors(images))
    return [torchvision_found(output, config.class_names) for output in outputs]


def assert_parity(model: MaskRCNN, config: MaskRcnnConfig, images: list[np.ndarray]) -> None:
    reference = theirs(model, config, images)
    for mine, expected in zip(ours(model, config, images), reference, strict=True):
        assert_same_found(mine, expected)


def published_model(name: str, **settings: object) -> tuple[MaskRCNN, MaskRcnnConfig]:
    """A published config (small input sizes) with seeded, trained-looking random weights."""
    config = replace(get_config(name), **settings)
    torch.manual_seed(0)
    model = randomize_norms(build_maskrcnn(config))
    return calm_masks(confident(model), gain=0.03), config


@pytest.fixture(scope="module")
def slim(slim_config: MaskRcnnConfig) -> tuple[MaskRCNN, MaskRcnnConfig]:
    """conftest's slim network, at this file's small input sizes."""
    config = replace(slim_config, **SMALL)
    torch.manual_seed(0)
    return confident(build_maskrcnn(config)), config


def test_slim_matches_torchvision_forward(
    slim: tuple[MaskRCNN, MaskRcnnConfig], images: list[np.ndarray]
) -> None:
    assert_parity(*slim, images)


@pytest.mark.slow
def test_resnet50_fpn_matches_torchvision_forward(images: list[np.ndarray]) -> None:
    assert_parity(*published_model("maskrcnn_resnet50_fpn", **SMALL), images)


@pytest.mark.slow
def test_resnet50_fpn_v2_matches_torchvision_forward(images: list[np.ndarray]) -> None:
    # v2's convolutional box head dominates on a CPU: fewer proposals, one image.
    model, config = published_model(
        "maskrcnn_resnet50_fpn_v2", **SMALL, rpn_post_nms_top_n_test=100
    )
    assert_parity(model, config, images[:1])


def test_per_image_padding_makes_a_batch_equal_one_at_a_time(
    slim: tuple[MaskRCNN, MaskRcnnConfig], images: list[np.ndarray]
) -> None:
    """torchvision pads a batch to its largest image (rounded up to 32), which moves every
    score a little and re-ranks near ties; ``per_image`` answers never depend on the company."""
    model, config = slim
    per_image = replace(config, batch_padding="per_image")
    same_padding = np.ascontiguousarray(images[0][:180, :240])  # padded 256×320, like [0]
    batch = [images[0], images[1], same_padding]
    together = ours(model, per_image, batch)
    for image, found in zip(batch, together, strict=True):
        assert_same_found(found, theirs(model, per_image, [image])[0])
