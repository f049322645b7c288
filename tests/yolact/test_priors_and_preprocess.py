"""Priors, feature-map sizes and preprocessing against the reference's documented values."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from maskserve.models.yolact.config import CONFIGS
from maskserve.models.yolact.network import Yolact
from maskserve.models.yolact.preprocess import preprocess_images
from maskserve.models.yolact.priors import make_priors

SIZES_550 = [(69, 69), (35, 35), (18, 18), (9, 9), (5, 5)]


def test_v1_priors_are_squares_in_reference_order() -> None:
    priors = make_priors(CONFIGS["yolact_base"], SIZES_550)
    assert priors.shape == (19248, 4)
    expected = torch.tensor(
        [[0.00725, 0.00725, 0.043636, 0.043636], [0.00725, 0.00725, 0.030856, 0.030856],
         [0.00725, 0.00725, 0.061713, 0.061713]]
    )  # fmt: skip
    torch.testing.assert_close(priors[:3], expected, atol=2e-5, rtol=0)


def test_plus_priors_are_rectangles_with_three_scales() -> None:
    priors = make_priors(CONFIGS["yolact_plus_base"], SIZES_550)
    assert priors.shape == (57744, 4)
    first = [(0.04364, 0.04364), (0.03086, 0.06171), (0.06171, 0.03086)]
    torch.testing.assert_close(priors[:3, 2:], torch.tensor(first), atol=2e-5, rtol=0)
    scales = priors[[0, 3, 6], 2] * 550
    torch.testing.assert_close(scales, torch.tensor([24.0, 30.238, 38.098]), atol=2e-3, rtol=0)


@pytest.mark.parametrize(("name", "count"), [("yolact_im400", 10077), ("yolact_im700", 30963)])
def test_prior_counts_for_other_input_sizes(name: str, count: int) -> None:
    config = CONFIGS[name]
    with torch.device("meta"):
        model = Yolact(config)
        levels, proto = model.forward_features(torch.zeros(1, 3, config.max_size, config.max_size))
    sizes = [tuple(level.shape[-2:]) for level in levels]
    assert make_priors(config, sizes).shape[0] == count
    assert proto.shape[1] == proto.shape[2] == sizes[0][0] * 2


def test_raw_output_shapes_at_550() -> None:
    config = CONFIGS["yolact_resnet50"]
    with torch.device("meta"):
        model = Yolact(config)
        loc, conf, coeffs, proto, _ = model.forward_heads(torch.zeros(2, 3, 550, 550))
    assert loc.shape == (2, 19248, 4)
    assert conf.shape == (2, 19248, 81)
    assert coeffs.shape == (2, 19248, 32)
    assert proto.shape == (2, 138, 138, 32)


def reference_transform(bgr: np.ndarray, size: int, normalize: bool) -> torch.Tensor:
    """FastBaseTransform as written in the reference: BGR in, resize, normalise, → RGB."""
    pixels = torch.from_numpy(bgr).float()[None].permute(0, 3, 1, 2).contiguous()
    resized = F.interpolate(pixels, (size, size), mode="bilinear", align_corners=False)
    if normalize:
        mean = torch.tensor([103.94, 116.78, 123.68])[None, :, None, None]
        std = torch.tensor([57.38, 57.12, 58.40])[None, :, None, None]
        resized = (resized - mean) / std
    else:
        resized = resized / 255
    return resized[:, (2, 1, 0)].contiguous()


@pytest.mark.parametrize("name", ["yolact_base", "yolact_im400", "yolact_darknet53"])
def test_preprocessing_equals_the_reference_bgr_path(name: str) -> None:
    config = CONFIGS[name]
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
    reference = reference_transform(rgb[:, :, ::-1].copy(), config.max_size, config.normalize)
    ours = preprocess_images([rgb], config, torch.device("cpu"))
    assert torch.equal(ours, reference)


def test_an_rgb_view_of_a_bgr_array_is_accepted() -> None:
    bgr = np.random.default_rng(1).integers(0, 256, (40, 30, 3), dtype=np.uint8)
    config, cpu = CONFIGS["yolact_base"], torch.device("cpu")
    flipped = preprocess_images([bgr[:, :, ::-1]], config, cpu)
    assert torch.equal(flipped, preprocess_images([bgr[:, :, ::-1].copy()], config, cpu))


def test_darknet_preprocessing_scales_to_unit_range() -> None:
    rgb = np.full((10, 10, 3), 255, dtype=np.uint8)
    out = preprocess_images([rgb], CONFIGS["yolact_darknet53"], torch.device("cpu"))
    assert torch.allclose(out, torch.ones_like(out))
