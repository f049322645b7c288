"""``--weights FILE`` picks the family from the checkpoint: Mask R-CNN or YOLACT."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torchvision.models.detection import maskrcnn_resnet50_fpn

from maskserve.models.registry import find_model
from maskserve.predict import backend_for_weights, is_maskrcnn_checkpoint


@pytest.fixture(scope="module")
def torchvision_pth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None)
    path = tmp_path_factory.mktemp("tv") / "maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth"
    torch.save(model.state_dict(), path)
    return path


def test_a_torchvision_checkpoint_becomes_a_maskrcnn_backend(torchvision_pth: Path) -> None:
    backend = backend_for_weights(torchvision_pth, None, torch.device("cpu"), torch.float32)
    assert backend.info.family == "maskrcnn"
    assert backend.info.extra["config"] == "maskrcnn_resnet50_fpn"
    assert backend.info.class_names[0] == "person"


def test_a_named_maskrcnn_config_is_used(torchvision_pth: Path) -> None:
    backend = backend_for_weights(
        torchvision_pth, "maskrcnn_resnet50_fpn", torch.device("cpu"), torch.float32
    )
    assert backend.info.family == "maskrcnn"


def test_a_yolact_checkpoint_stays_yolact(torchvision_pth: Path) -> None:
    assert not is_maskrcnn_checkpoint(find_model("yolact_shapes").weights, None)
    assert not is_maskrcnn_checkpoint(torchvision_pth, "yolact_base")
    assert is_maskrcnn_checkpoint(torchvision_pth, None)
