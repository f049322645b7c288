"""torchvision's Mask R-CNN checkpoints load unchanged; bad ones fail clearly; COCO's labels.

The published files are flat state_dicts written by ``torch.save(model.state_dict())``;
the v1 COCO file comes from a FrozenBatchNorm2d network, so it holds no
``num_batches_tracked`` buffers. Both forms are written here from torchvision's own
builders (seeded random weights, nothing downloaded).
"""

from __future__ import annotations

import pickle
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from maskrcnn_helpers import (
    as_tensors,
    assert_same_found,
    confident,
    served_found,
    torchvision_coco_v1,
    torchvision_found,
)
from torchvision.models._meta import _COCO_CATEGORIES
from torchvision.models.detection import (
    MaskRCNN,
    maskrcnn_resnet50_fpn,
    maskrcnn_resnet50_fpn_v2,
)
from torchvision.ops import FrozenBatchNorm2d

from maskserve.models.maskrcnn.backend import MaskRcnnBackend
from maskserve.models.maskrcnn.checkpoint import load_maskrcnn
from maskserve.models.maskrcnn.config import COCO_NAMES, MaskRcnnConfig, get_config
from maskserve.models.maskrcnn.network import build_maskrcnn
from maskserve.models.registry import ModelSpec, build_backend
from maskserve.models.training.train_maskrcnn import (
    SERVED_SCORE_THRESHOLD,
    shapes_maskrcnn_config,
    write_model,
)
from maskserve.models.yolact.checkpoint import CheckpointError

BUILDERS = {
    "maskrcnn_resnet50_fpn": maskrcnn_resnet50_fpn,
    "maskrcnn_resnet50_fpn_v2": maskrcnn_resnet50_fpn_v2,
}
FILES = {
    "maskrcnn_resnet50_fpn": "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth",
    "maskrcnn_resnet50_fpn_v2": "maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth",
}
COCO_UNUSED_LABELS = {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}


def torchvision_state(name: str, **kwargs: object) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = BUILDERS[name](weights=None, weights_backbone=None, **kwargs)
    return model.state_dict()


def as_published(name: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """v1's COCO file has no batch counters (FrozenBatchNorm2d); v2's network has them."""
    if name == "maskrcnn_resnet50_fpn_v2":
        return state
    return {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}


def assert_tensors_equal(model: MaskRCNN, state: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    for key, tensor in state.items():
        assert torch.equal(loaded[key], tensor), key


@pytest.mark.parametrize("name", list(BUILDERS))
def test_torchvision_checkpoint_loads_unchanged(name: str, tmp_path: Path) -> None:
    state = as_published(name, torchvision_state(name))
    path = tmp_path / FILES[name]
    torch.save(state, path)
    model, config = load_maskrcnn(path)
    assert config == get_config(name)
    assert isinstance(model, MaskRCNN) and not model.training
    assert_tensors_equal(model, state)


@pytest.mark.parametrize("name", list(BUILDERS))
def test_built_layouts_equal_torchvision_builders(name: str) -> None:
    with torch.device("meta"):
        ours = build_maskrcnn(get_config(name)).state_dict()
        theirs = BUILDERS[name](weights=None, weights_backbone=None).state_dict()
    assert list(ours) == list(theirs)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


def inference_settings(model: MaskRCNN) -> dict[str, object]:
    """Everything that shapes a MaskRCNN's eval output besides its weights."""
    transform, rpn, heads = model.transform, model.rpn, model.roi_heads
    return {
        "transform": (transform.min_size, transform.max_size, transform.image_mean),
        "transform_std": (transform.image_std, transform.size_divisible, transform.fixed_size),
        "rpn": (rpn._pre_nms_top_n, rpn._post_nms_top_n, rpn.nms_thresh, rpn.score_thresh),
        "rpn_boxes": (rpn.min_size, rpn.box_coder.weights, rpn.box_coder.bbox_xform_clip),
        "anchors": (rpn.anchor_generator.sizes, rpn.anchor_generator.aspect_ratios),
        "heads": (heads.score_thresh, heads.nms_thresh, heads.detections_per_img),
        "head_boxes": (heads.box_coder.weights, heads.box_coder.bbox_xform_clip),
        "pools": [
            (pool.featmap_names, pool.output_size, pool.sampling_ratio)
            for pool in (heads.box_roi_pool, heads.mask_roi_pool)
        ],
    }


@pytest.mark.parametrize("name", list(BUILDERS))
def test_published_configs_use_torchvision_defaults(name: str) -> None:
    with torch.device("meta"):
        ours = build_maskrcnn(get_config(name))
        theirs = BUILDERS[name](weights=None, weights_backbone=None)
    assert inference_settings(ours) == inference_settings(theirs)


def test_v1_batchnorm_runs_without_eps_like_the_coco_weights() -> None:
    """torchvision runs v1's COCO weights with ``overwrite_eps(model, 0.0)``: with small
    running variances (trained networks have them) eps 1e-5 would change every feature."""
    torch.manual_seed(0)
    reference = torchvision_coco_v1()
    with torch.no_grad():
        for module in reference.modules():
            if isinstance(module, FrozenBatchNorm2d):
                module.running_var.uniform_(1e-4, 1e-3)
                module.weight.copy_(module.running_var.sqrt())
    state = reference.state_dict()
    image = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(1))

    def features(config: MaskRcnnConfig) -> torch.Tensor:
        model = build_maskrcnn(config).eval()
        model.load_state_dict(state, strict=False)
        with torch.inference_mode():
            return model.backbone(image)["0"]

    with torch.inference_mode():
        expected = reference.backbone(image)["0"]
    config = get_config("maskrcnn_resnet50_fpn")
    torch.testing.assert_close(features(config), expected, rtol=1e-4, atol=1e-4)
    with_eps = features(replace(config, batchnorm_eps=None))
    assert not torch.allclose(with_eps, expected, rtol=1e-2, atol=1e-2)


@pytest.fixture(scope="module")
def v1_state() -> dict[str, torch.Tensor]:
    return torchvision_state("maskrcnn_resnet50_fpn")


def test_mismatched_checkpoint_names_config_and_first_keys(
    v1_state: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    state = dict(v1_state)
    state["backbone.fpn.layer_blocks.0.0.wieght"] = state.pop(
        "backbone.fpn.layer_blocks.0.0.weight"
    )
    state["rpn.head.cls_logits.bias"] = torch.zeros(4)
    torch.save(state, tmp_path / FILES["maskrcnn_resnet50_fpn"])
    with pytest.raises(CheckpointError) as raised:
        load_maskrcnn(tmp_path / FILES["maskrcnn_resnet50_fpn"])
    message = str(raised.value)
    assert "Mask R-CNN config 'maskrcnn_resnet50_fpn'" in message
    assert "1 missing (first: backbone.fpn.layer_blocks.0.0.weight)" in message
    assert "1 unexpected (first: backbone.fpn.layer_blocks.0.0.wieght)" in message
    assert "1 mis-shaped (first: rpn.head.cls_logits.bias: checkpoint (4,) vs config (3,))" in (
        message
    )


class _Touch:
    """Unpickling this creates a file: the proof that an object's code would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def test_pickled_objects_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    torch.save({"conv.weight": torch.zeros(1), "payload": _Touch(marker)}, tmp_path / "evil.pth")
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_maskrcnn(tmp_path / "evil.pth")
    assert not marker.exists()
    torch.save({"model": {"conv.weight": torch.zeros(1)}, "epoch": 3}, tmp_path / "nested.pth")
    with pytest.raises(CheckpointError, match="not a flat state_dict of tensors"):
        load_maskrcnn(tmp_path / "nested.pth")


def test_other_class_count_gets_placeholder_names(tmp_path: Path) -> None:
    state = as_published(
        "maskrcnn_resnet50_fpn", torchvision_state("maskrcnn_resnet50_fpn", num_classes=4)
    )
    torch.save(state, tmp_path / "finetuned.pth")
    model, config = load_maskrcnn(tmp_path / "finetuned.pth")
    assert config.name == "maskrcnn_resnet50_fpn"
    assert config.class_names == ("class_0", "class_1", "class_2")
    assert model.roi_heads.box_predictor.cls_score.out_features == config.num_classes == 4
    assert_tensors_equal(model, state)


def test_not_a_published_layout_asks_for_a_config(tmp_path: Path) -> None:
    torch.manual_seed(0)
    write_model(build_maskrcnn(shapes_maskrcnn_config()), tmp_path)
    with pytest.raises(CheckpointError, match=r"name the config in model\.toml"):
        load_maskrcnn(tmp_path / "weights.safetensors")


def test_safetensors_model_folder_round_trip_is_exact(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = confident(build_maskrcnn(shapes_maskrcnn_config()))
    write_model(model, tmp_path / "maskrcnn_toy")
    backend = build_backend(ModelSpec.from_folder(tmp_path / "maskrcnn_toy"), "cpu")
    assert isinstance(backend, MaskRcnnBackend)
    assert backend.predictor.config == shapes_maskrcnn_config()
    assert backend.info.family == "maskrcnn"
    assert backend.info.score_threshold == SERVED_SCORE_THRESHOLD
    loaded = backend.predictor.model.state_dict()
    assert list(loaded) == list(model.state_dict())
    assert_tensors_equal(backend.predictor.model, model.state_dict())


def test_coco_label_map() -> None:
    """torchvision label l is COCO category id l and maskserve class id l − 1."""
    assert len(COCO_NAMES) == 90 and _COCO_CATEGORIES[0] == "__background__"
    for label in range(1, 91):
        assert COCO_NAMES[label - 1] == _COCO_CATEGORIES[label]
    assert {i + 1 for i, name in enumerate(COCO_NAMES) if name == "N/A"} == COCO_UNUSED_LABELS
    assert (COCO_NAMES[0], COCO_NAMES[89]) == ("person", "toothbrush")


def test_unused_coco_labels_are_never_reported(
    slim_config: MaskRcnnConfig, images: list[np.ndarray]
) -> None:
    """A network with COCO's 91 outputs whose favourite label is an "N/A" id: torchvision
    reports those, the server drops them and keeps everything else in order."""
    config = replace(
        slim_config, class_names=COCO_NAMES, min_size=256, max_size=320, detections_per_img=100
    )
    torch.manual_seed(0)
    # Near-equal boosts interleave the two labels (seed 0: about 70 % label 12).
    model = confident(confident(build_maskrcnn(config), label=12, boost=6.1), label=1)
    with torch.inference_mode():
        (output,) = model([as_tensors(images[:1])[0]])
    assert 12 in output["labels"].tolist() and 1 in output["labels"].tolist()
    backend = MaskRcnnBackend(model, config, "coco", torch.device("cpu"), torch.float32)
    (found,) = backend.infer(images[:1], config.detections_per_img)
    assert not set((found.class_ids + 1).tolist()) & COCO_UNUSED_LABELS
    assert 0 in found.class_ids.tolist()
    assert_same_found(served_found(found), torchvision_found(output, COCO_NAMES))
