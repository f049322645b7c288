"""Every published config builds exactly the keys and shapes of the original checkpoints."""

from pathlib import Path

import pytest
import torch

from maskserve.models.yolact import checkpoint
from maskserve.models.yolact.config import CONFIGS, PUBLISHED_CONFIG_NAMES

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "yolact_state_dicts"


def reference_shapes(name: str) -> dict[str, tuple[int, ...]]:
    lines = (REFERENCE / f"yolact_state_dict_{name}.tsv").read_text().splitlines()[1:]
    shapes = {}
    for line in lines:
        key, shape, _ = line.split("\t")
        shapes[key] = () if shape == "scalar" else tuple(int(s) for s in shape.split("x"))
    return shapes


@pytest.mark.parametrize("name", PUBLISHED_CONFIG_NAMES)
def test_keys_and_shapes_equal_the_published_checkpoint(name: str) -> None:
    assert checkpoint.expected_shapes(CONFIGS[name]) == reference_shapes(name)


def fake_checkpoint(name: str) -> dict[str, torch.Tensor]:
    """Zero tensors with the published keys and shapes (no real weights can be downloaded)."""
    return {k: torch.zeros(s) for k, s in reference_shapes(name).items()}


@pytest.mark.parametrize("name", ["yolact_resnet50", "yolact_darknet53", "yolact_plus_resnet50"])
def test_config_is_inferred_from_keys_and_shapes(name: str) -> None:
    assert checkpoint.infer_config(fake_checkpoint(name)).name == name


def test_file_name_decides_between_configs_with_identical_weights() -> None:
    state = fake_checkpoint("yolact_base")
    assert checkpoint.infer_config(state, "yolact_im700_54_800000.pth").name == "yolact_im700"
    assert checkpoint.infer_config(state, "weights.pth").name == "yolact_base"


def test_training_only_keys_are_dropped_or_tolerated() -> None:
    state = fake_checkpoint("yolact_resnet50")
    state["backbone.layer1.0.conv1.weight"] = torch.zeros(1)
    state["fpn.downsample_layers.2.weight"] = torch.zeros(1)
    del state["semantic_seg_conv.weight"], state["semantic_seg_conv.bias"]
    cleaned = checkpoint.clean_state_dict(state)
    assert checkpoint.infer_config(cleaned).name == "yolact_resnet50"
    assert "backbone.layer1.0.conv1.weight" not in cleaned


def test_other_class_count_is_adapted() -> None:
    state = fake_checkpoint("yolact_resnet50")
    state["prediction_layers.0.conf_layer.weight"] = torch.zeros(3 * 11, 256, 3, 3)
    state["prediction_layers.0.conf_layer.bias"] = torch.zeros(3 * 11)
    del state["semantic_seg_conv.weight"], state["semantic_seg_conv.bias"]
    config = checkpoint.infer_config(state)
    assert config.name == "yolact_resnet50" and config.num_classes == 10
