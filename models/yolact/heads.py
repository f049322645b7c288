"""FPN, protonet, the shared prediction head and YOLACT++'s mask re-scoring net."""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn


class FPN(nn.Module):
    """Feature pyramid with lists stored deepest-first, as the reference stores them."""

    def __init__(self, in_channels: tuple[int, ...], channels: int, num_downsample: int = 2):
        super().__init__()
        deepest_first = list(reversed(in_channels))
        self.lat_layers = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in deepest_first)
        self.pred_layers = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, padding=1) for _ in deepest_first
        )
        self.downsample_layers = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, padding=1, stride=2) for _ in range(num_downsample)
        )

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        """``features`` shallow-first (C3, C4, C5) → (P3, …, P7)."""
        laterals: list[torch.Tensor] = []
        running: torch.Tensor | None = None
        for lat, feature in zip(self.lat_layers, reversed(features), strict=True):
            if running is not None:
                running = F.interpolate(
                    running, size=feature.shape[-2:], mode="bilinear", align_corners=False
                )
                running = running + lat(feature)
            else:
                running = lat(feature)
            laterals.append(running)
        outputs = [F.relu(pred(x)) for pred, x in zip(self.pred_layers, laterals, strict=True)]
        outputs.reverse()
        extra = outputs[-1]
        for down in self.downsample_layers:
            extra = down(extra)
            outputs.append(extra)
        return outputs


def build_protonet(in_channels: int, channels: int, mask_dim: int) -> nn.Sequential:
    """Indices match the checkpoint keys: convs at 0, 2, 4, 8 and 10."""
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, mask_dim, 1),
    )


class PredictionHead(nn.Module):
    """One head shared by every FPN level: boxes, class logits and mask coefficients."""

    def __init__(
        self, in_channels: int, channels: int, num_priors: int, num_classes: int, mask_dim: int
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.mask_dim = mask_dim
        self.upfeature = nn.Sequential(nn.Conv2d(in_channels, channels, 3, padding=1), nn.ReLU())
        self.bbox_layer = nn.Conv2d(channels, num_priors * 4, 3, padding=1)
        self.conf_layer = nn.Conv2d(channels, num_priors * num_classes, 3, padding=1)
        self.mask_layer = nn.Conv2d(channels, num_priors * mask_dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.upfeature(x)
        batch = x.shape[0]

        def flat(t: torch.Tensor, k: int) -> torch.Tensor:
            return t.permute(0, 2, 3, 1).reshape(batch, -1, k)

        loc = flat(self.bbox_layer(x), 4)
        conf = flat(self.conf_layer(x), self.num_classes)
        coeffs = torch.tanh(flat(self.mask_layer(x), self.mask_dim))
        return loc, conf, coeffs


class MaskIoUNet(nn.Module):
    """YOLACT++ mask re-scoring: cropped soft masks [N,1,ph,pw] → per-class IoU [N,C]."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        widths = [1, 8, 16, 32, 64, 128]
        layers: list[nn.Module] = []
        for c_in, c_out in itertools.pairwise(widths):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2), nn.ReLU(inplace=True)]
        layers += [nn.Conv2d(128, num_classes, 1), nn.ReLU(inplace=True)]
        self.maskiou_net = nn.Sequential(*layers)

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        return self.maskiou_net(masks).amax(dim=(2, 3))
