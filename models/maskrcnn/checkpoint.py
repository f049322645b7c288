"""Loading torchvision Mask R-CNN checkpoints (and maskserve's own safetensors).

torchvision's files (``maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth``,
``maskrcnn_resnet50_fpn_v2_coco-73cbd019.pth``) are flat state_dicts and load unchanged
through ``torch.load(weights_only=True)``. The config comes from the caller, else from
the keys: v2 has a convolutional box head (``roi_heads.box_head.0.0.weight``), v1 the
``fc6``/``fc7`` MLP; the class count is read from the box predictor.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path

import torch
from torchvision.models.detection import MaskRCNN

from maskserve.models.maskrcnn.config import MaskRcnnConfig, get_config
from maskserve.models.maskrcnn.network import build_maskrcnn
from maskserve.models.yolact.checkpoint import CheckpointError, compare_shapes, read_state_dict

log = logging.getLogger(__name__)

_OPTIONAL = re.compile(r"\.num_batches_tracked$")
_CLASS_SCORE = "roi_heads.box_predictor.cls_score.weight"


def infer_config(state: dict[str, torch.Tensor]) -> MaskRcnnConfig:
    """The published config whose layout fits ``state`` (class count adapted)."""
    if "roi_heads.box_head.0.0.weight" in state:
        config = get_config("maskrcnn_resnet50_fpn_v2")
    elif (
        "roi_heads.box_head.fc6.weight" in state and "backbone.body.layer4.2.conv3.weight" in state
    ):
        config = get_config("maskrcnn_resnet50_fpn")
    else:
        raise CheckpointError(
            "not a torchvision maskrcnn_resnet50_fpn(_v2) checkpoint (no box head keys); "
            "name the config in model.toml's [maskrcnn] table"
        )
    return with_class_count(config, state)


def with_class_count(config: MaskRcnnConfig, state: dict[str, torch.Tensor]) -> MaskRcnnConfig:
    """Placeholder names when the checkpoint was trained on another number of classes."""
    scores = state.get(_CLASS_SCORE)
    if scores is None or scores.shape[0] == config.num_classes or scores.shape[0] < 2:
        return config
    return replace(config, class_names=tuple(f"class_{i}" for i in range(scores.shape[0] - 1)))


def compare_keys(model: MaskRCNN, state: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """Missing, unexpected and mis-shaped keys of ``state`` against ``model``."""
    return compare_shapes({k: tuple(v.shape) for k, v in model.state_dict().items()}, state)


def build_loaded(config: MaskRcnnConfig, state: dict[str, torch.Tensor]) -> MaskRCNN:
    """A network for ``config`` with ``state`` loaded, or a :class:`CheckpointError`."""
    model = build_maskrcnn(config)
    diff = compare_keys(model, state)
    if any(diff.values()):
        parts = [f"checkpoint does not match Mask R-CNN config {config.name!r}"]
        parts += [f"{len(v)} {kind} (first: {v[0]})" for kind, v in diff.items() if v]
        raise CheckpointError("; ".join(parts))
    model.load_state_dict(state, strict=False)
    return model.eval()


def load_maskrcnn(
    path: str | Path, config: MaskRcnnConfig | str | None = None
) -> tuple[MaskRCNN, MaskRcnnConfig]:
    """Load a torchvision ``.pth`` or our ``.safetensors`` into a network (eval mode)."""
    state = read_state_dict(path)
    if config is None:
        chosen = infer_config(state)
        log.info("inferred Mask R-CNN config %s for %s", chosen.name, path)
    else:
        chosen = get_config(config) if isinstance(config, str) else config
        chosen = with_class_count(chosen, state)
    return build_loaded(chosen, state), chosen
