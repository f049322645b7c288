"""Folding BatchNorm into the convolution before it, for inference.

``conv → bn`` in eval mode is one affine map per channel after the conv, so it folds into
the conv's weights and bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``): one pass over
the activations less per pair. Only pairs known to be applied back to back are folded:
neighbours in an ``nn.Sequential`` and ResNet blocks' ``convN``/``bnN`` (torchvision's
BasicBlock and Bottleneck apply them so). A deformable conv is not an ``nn.Conv2d`` and is
left alone. The folded BN becomes ``nn.Identity``, so the module's state dict changes:
fold a serving copy, never weights that will be saved.
"""

from __future__ import annotations

import itertools

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

_RESNET_PAIRS = [(f"conv{i}", f"bn{i}") for i in range(1, 4)]


def fold_batchnorms(model: nn.Module) -> int:
    """Fold every known Conv2d → BatchNorm2d pair of ``model`` (in eval mode) in place;
    returns how many were folded."""
    folded = 0
    for parent in list(model.modules()):
        pairs = list(_RESNET_PAIRS)
        if isinstance(parent, nn.Sequential):
            pairs += list(itertools.pairwise(name for name, _ in parent.named_children()))
        for conv_name, bn_name in pairs:
            conv, bn = getattr(parent, conv_name, None), getattr(parent, bn_name, None)
            if type(conv) is nn.Conv2d and type(bn) is nn.BatchNorm2d and not bn.training:
                setattr(parent, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(parent, bn_name, nn.Identity())
                folded += 1
    return folded
