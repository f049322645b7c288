"""Backbones with the exact parameter names of dbolya/yolact's checkpoints.

ResNet follows torchvision's "v1.5" layout (stride on the 3×3 conv) under the names
``conv1``, ``bn1`` and ``layers.{i}``; YOLACT++ swaps some 3×3 convs for modulated
deformable convs (:class:`ModulatedDeformConv`). DarkNet-53 follows the reference's
``_preconv`` + ``layers.{i}`` naming.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck
from torchvision.ops import deform_conv2d

from maskserve.models.yolact.config import BackboneConfig


class ModulatedDeformConv(nn.Module):
    """DCNv2 3×3 conv: offsets and a sigmoid modulation mask from ``conv_offset_mask``."""

    def __init__(self, channels_in: int, channels_out: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.weight = nn.Parameter(torch.empty(channels_out, channels_in, 3, 3))
        self.bias = nn.Parameter(torch.zeros(channels_out))
        self.conv_offset_mask = nn.Conv2d(channels_in, 27, 3, stride=stride, padding=1)
        nn.init.kaiming_uniform_(self.weight, a=1)
        nn.init.zeros_(self.conv_offset_mask.weight)
        nn.init.zeros_(self.conv_offset_mask.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offset_mask = self.conv_offset_mask(x)
        offset, modulation = offset_mask[:, :18], offset_mask[:, 18:].sigmoid()
        return deform_conv2d(
            x, offset, self.weight, self.bias, stride=self.stride, padding=1, mask=modulation
        )


def _is_deformable(block_index: int, num_blocks: int, deform_count: int, interval: int) -> bool:
    if block_index == 0:
        return deform_count >= num_blocks
    return block_index + deform_count >= num_blocks and block_index % interval == 0


class ResNetBackbone(nn.Module):
    """ResNet returning every stage's output; ``layers.{i}`` is torchvision's ``layer{i+1}``."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        block = Bottleneck if config.bottleneck else BasicBlock
        self.conv1 = nn.Conv2d(3, config.stem_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(config.stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layers = nn.ModuleList()
        channels = config.stem_width
        for stage, (num_blocks, planes) in enumerate(
            zip(config.layers, config.widths, strict=True)
        ):
            stride = 1 if stage == 0 else 2
            deform = config.deform_layers[stage] if stage < len(config.deform_layers) else 0
            blocks = []
            for index in range(num_blocks):
                downsample = None
                out_channels = planes * block.expansion
                if index == 0 and (stride != 1 or channels != out_channels):
                    downsample = nn.Sequential(
                        nn.Conv2d(channels, out_channels, 1, stride=stride, bias=False),
                        nn.BatchNorm2d(out_channels),
                    )
                unit = block(channels, planes, stride if index == 0 else 1, downsample)
                if _is_deformable(index, num_blocks, deform, config.deform_interval):
                    # conv2 is the 3×3: strided in a Bottleneck, always stride 1 in a BasicBlock.
                    conv2_stride = stride if index == 0 and config.bottleneck else 1
                    unit.conv2 = ModulatedDeformConv(planes, planes, conv2_stride)
                blocks.append(unit)
                channels = out_channels
            self.layers.append(nn.Sequential(*blocks))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        outputs = []
        for layer in self.layers:
            x = layer(x)
            outputs.append(x)
        return outputs


def _conv_bn_leaky(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.1, inplace=True),
    )


class DarkNetBlock(nn.Module):
    """1×1 (c) then 3×3 (2c), added to the input with no activation after the add."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = _conv_bn_leaky(channels, channels // 2, 1, 1)
        self.conv2 = _conv_bn_leaky(channels // 2, channels, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


class DarkNetBackbone(nn.Module):
    """DarkNet-53 as in the reference; ``_preconv`` runs first."""

    def __init__(self, config: BackboneConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList()
        channels = config.stem_width
        for num_blocks, width in zip(config.layers, config.widths, strict=True):
            stage = [_conv_bn_leaky(channels, width, 3, 2)]
            stage.extend(DarkNetBlock(width) for _ in range(num_blocks))
            self.layers.append(nn.Sequential(*stage))
            channels = width
        self._preconv = _conv_bn_leaky(3, config.stem_width, 3, 1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self._preconv(x)
        outputs = []
        for layer in self.layers:
            x = layer(x)
            outputs.append(x)
        return outputs


def build_backbone(config: BackboneConfig) -> nn.Module:
    """The backbone named by ``config.kind``."""
    builders = {"resnet": ResNetBackbone, "darknet": DarkNetBackbone}
    if config.kind not in builders:
        raise ValueError(f"unknown backbone kind {config.kind!r}; known: {sorted(builders)}")
    return builders[config.kind](config)
