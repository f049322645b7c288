"""The YOLACT network: backbone → FPN → protonet + shared prediction head."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from maskserve.models.yolact.backbones import build_backbone
from maskserve.models.yolact.config import YolactConfig
from maskserve.models.yolact.heads import FPN, MaskIoUNet, PredictionHead, build_protonet
from maskserve.models.yolact.priors import make_priors


@dataclass
class RawOutputs:
    """The network's raw heads, batched.

    loc [B,P,4], conf logits [B,P,C+1], coeffs [B,P,k] (after tanh), proto [B,h,w,k]
    (channels-last, after ReLU) and priors [P,4].
    """

    loc: torch.Tensor
    conf: torch.Tensor
    coeffs: torch.Tensor
    proto: torch.Tensor
    priors: torch.Tensor


class Yolact(nn.Module):
    """Parameter names equal the published checkpoints' keys."""

    def __init__(self, config: YolactConfig) -> None:
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config.backbone)
        channels = config.backbone.out_channels
        selected = tuple(channels[i] for i in config.backbone.selected_layers)
        self.fpn = FPN(selected, config.fpn_channels)
        self.proto_net = build_protonet(config.fpn_channels, config.proto_channels, config.mask_dim)
        self.prediction_layers = nn.ModuleList(
            [
                PredictionHead(
                    config.fpn_channels,
                    config.head_channels,
                    config.priors_per_location,
                    config.num_classes + 1,
                    config.mask_dim,
                )
            ]
        )
        if config.has_semantic_seg:
            self.semantic_seg_conv = nn.Conv2d(config.fpn_channels, config.num_classes, 1)
        if config.use_maskiou:
            self.maskiou_net = MaskIoUNet(config.num_classes)
        self._priors: dict[tuple[tuple[tuple[int, int], ...], str], torch.Tensor] = {}

    def priors_for(self, level_sizes: list[tuple[int, int]], device: torch.device) -> torch.Tensor:
        """Priors for these feature-map sizes, cached per (sizes, device)."""
        key = (tuple(level_sizes), str(device))
        if key not in self._priors:
            self._priors[key] = make_priors(self.config, level_sizes, device)
        return self._priors[key]

    def forward_features(self, images: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """FPN levels (P3..P7) and channels-last protos [B,h,w,k]."""
        stages = self.backbone(images)
        levels = self.fpn([stages[i] for i in self.config.backbone.selected_layers])
        proto = torch.relu(self.proto_net(levels[0])).permute(0, 2, 3, 1).contiguous()
        return levels, proto

    def forward_heads(
        self, images: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """Plain-tensor outputs (loc, conf logits, coeffs, proto, levels): what ONNX sees."""
        levels, proto = self.forward_features(images)
        head = self.prediction_layers[0]
        outputs = [head(level) for level in levels]
        loc, conf, coeffs = (torch.cat(parts, dim=1) for parts in zip(*outputs, strict=True))
        return loc, conf, coeffs, proto, levels

    def forward(self, images: torch.Tensor) -> RawOutputs:
        loc, conf, coeffs, proto, levels = self.forward_heads(images)
        sizes = [(int(x.shape[-2]), int(x.shape[-1])) for x in levels]
        priors = self.priors_for(sizes, images.device)
        return RawOutputs(loc=loc, conf=conf, coeffs=coeffs, proto=proto, priors=priors)
