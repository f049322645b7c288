"""Build torchvision ``MaskRCNN`` networks from a :class:`MaskRcnnConfig`.

The published archs use torchvision's own builders (random init, nothing downloaded), so
their parameter names equal torchvision's checkpoint files. The slim arch is the same
``MaskRCNN`` with maskserve's slim ResNet (the shipped YOLACT's backbone layout) under
an FPN and narrower heads.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from torchvision.models.detection import (
    MaskRCNN,
    maskrcnn_resnet50_fpn,
    maskrcnn_resnet50_fpn_v2,
)
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.models.detection.rpn import RPNHead
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

from maskserve.models.maskrcnn.config import MaskRcnnConfig
from maskserve.models.yolact.backbones import ResNetBackbone
from maskserve.models.yolact.config import BackboneConfig

FPN_LEVELS = ("0", "1", "2", "3")


class SlimResNetFpn(nn.Module):
    """maskserve's slim ResNet (all four stages) under a torchvision FPN + max-pool level."""

    def __init__(self, config: BackboneConfig, out_channels: int) -> None:
        super().__init__()
        self.body = ResNetBackbone(config)
        self.fpn = FeaturePyramidNetwork(
            list(config.out_channels), out_channels, extra_blocks=LastLevelMaxPool()
        )
        self.out_channels = out_channels

    def forward(self, images: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        stages = self.body(images)
        return self.fpn(OrderedDict(zip(FPN_LEVELS, stages, strict=True)))


def _inference_kwargs(config: MaskRcnnConfig) -> dict[str, object]:
    return {
        "min_size": config.min_size,
        "max_size": config.max_size,
        "rpn_pre_nms_top_n_test": config.rpn_pre_nms_top_n_test,
        "rpn_post_nms_top_n_test": config.rpn_post_nms_top_n_test,
        "rpn_nms_thresh": config.rpn_nms_thresh,
        "box_score_thresh": config.box_score_thresh,
        "box_nms_thresh": config.box_nms_thresh,
        "box_detections_per_img": config.detections_per_img,
    }


def _slim_maskrcnn(config: MaskRcnnConfig, **train_kwargs: object) -> MaskRCNN:
    assert config.backbone is not None
    channels = config.fpn_channels
    backbone = SlimResNetFpn(config.backbone, channels)
    anchors = AnchorGenerator(
        tuple((s,) for s in config.anchor_sizes), ((0.5, 1.0, 2.0),) * len(config.anchor_sizes)
    )
    mask_width = config.mask_head_channels[-1]
    return MaskRCNN(
        backbone,
        rpn_anchor_generator=anchors,
        rpn_head=RPNHead(channels, 3),
        box_roi_pool=MultiScaleRoIAlign(list(FPN_LEVELS), 7, 2),
        box_head=TwoMLPHead(channels * 7 * 7, config.representation_size),
        box_predictor=FastRCNNPredictor(config.representation_size, config.num_classes),
        mask_roi_pool=MultiScaleRoIAlign(list(FPN_LEVELS), 14, 2),
        mask_head=MaskRCNNHeads(channels, list(config.mask_head_channels), 1),
        mask_predictor=MaskRCNNPredictor(mask_width, mask_width, config.num_classes),
        **_inference_kwargs(config),
        **train_kwargs,
    )


def build_maskrcnn(config: MaskRcnnConfig, **train_kwargs: object) -> MaskRCNN:
    """A randomly initialised network for ``config`` (eval settings from the config)."""
    if config.arch == "slim_resnet_fpn":
        model = _slim_maskrcnn(config, **train_kwargs)
    else:
        builder = (
            maskrcnn_resnet50_fpn if config.arch == "resnet50_fpn" else maskrcnn_resnet50_fpn_v2
        )
        model = builder(
            weights=None,
            weights_backbone=None,
            num_classes=config.num_classes,
            **_inference_kwargs(config),
            **train_kwargs,
        )
    if config.batchnorm_eps is not None:
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.eps = config.batchnorm_eps
    return model
