"""Helpers of the Mask R-CNN tests: torchvision references, comparisons (pycocotools judges)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pycocotools.mask as mask_utils
import torch
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection._utils import overwrite_eps
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
from torchvision.models.resnet import resnet50
from torchvision.ops import FrozenBatchNorm2d

from maskserve.masks import encode_box_masks_with_areas
from maskserve.models.types import Detections


def coco_encode(masks: torch.Tensor) -> list[dict]:
    """pycocotools' RLEs of full masks [N, H, W], counts as str."""
    array = np.asfortranarray(masks.permute(1, 2, 0).cpu().numpy().astype(np.uint8))
    return [
        {"size": r["size"], "counts": r["counts"].decode("ascii")} for r in mask_utils.encode(array)
    ]


def decode(rles: list[dict]) -> np.ndarray:
    """[N, H, W] bool masks of string-count RLEs (pycocotools decodes)."""
    if not rles:
        return np.zeros((0, 0, 0), dtype=bool)
    encoded = [{"size": r["size"], "counts": r["counts"].encode()} for r in rles]
    return mask_utils.decode(encoded).transpose(2, 0, 1).astype(bool)


def mask_ious(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-mask IoU; two empty masks count as identical (1.0)."""
    inter = (a & b).reshape(len(a), -1).sum(1)
    union = (a | b).reshape(len(a), -1).sum(1)
    return np.where(union == 0, 1.0, inter / np.maximum(union, 1))


def as_tensors(images: list[np.ndarray]) -> list[torch.Tensor]:
    """torchvision's input: float [3, H, W] in [0, 1] per RGB uint8 image."""
    return [torch.from_numpy(image).permute(2, 0, 1).float() / 255.0 for image in images]


def randomize_norms(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Trained-looking batch-norm statistics and affines (random init has mean 0, var 1)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if not isinstance(module, torch.nn.BatchNorm2d | FrozenBatchNorm2d):
                continue
            for name, low, high in (
                ("weight", 0.75, 1.25),
                ("bias", -0.05, 0.05),
                ("running_mean", -0.05, 0.05),
                ("running_var", 0.75, 1.25),
            ):
                tensor = getattr(module, name)
                tensor.copy_(torch.rand(tensor.shape, generator=gen) * (high - low) + low)
    return model


def calm_masks(model: MaskRCNN, gain: float) -> MaskRCNN:
    """Scale the mask logits of a random network towards trained magnitudes.

    Random ResNet-50 heads give logits of ±80: saturated 0/1 probabilities in a
    pixel-level pattern, so bilinear taps of weight 0.5 between a 1 and a 0 land exactly
    on the 0.5 threshold and either side is a rounding accident (no two paste kernels
    agree there). Trained masks are smooth and not like that.
    """
    with torch.no_grad():
        logits = model.roi_heads.mask_predictor.mask_fcn_logits
        logits.weight.mul_(gain)
        logits.bias.mul_(gain)
    return model


def torchvision_coco_v1(**kwargs: object) -> MaskRCNN:
    """``maskrcnn_resnet50_fpn`` as torchvision runs it with its COCO_V1 weights.

    The builder's weighted path, minus the download: ResNet-50 with FrozenBatchNorm2d
    (hence no ``num_batches_tracked`` in its state_dict, like the published file), three
    trainable stages, and ``overwrite_eps(model, 0.0)``.
    """
    backbone = resnet50(weights=None, norm_layer=FrozenBatchNorm2d)
    model = MaskRCNN(_resnet_fpn_extractor(backbone, 3), num_classes=91, **kwargs)
    overwrite_eps(model, 0.0)
    return model.eval()


@dataclass
class Found:
    """One image's detections in a comparable form (class ids, full bool masks)."""

    class_ids: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray


def torchvision_found(output: dict[str, torch.Tensor], class_names: tuple[str, ...]) -> Found:
    """torchvision's own output, thresholded as its COCO evaluation does (``masks > 0.5``),
    without the labels a server never reports (background cannot occur; ``"N/A"``)."""
    labels = output["labels"].numpy()
    keep = np.array([class_names[label - 1] != "N/A" for label in labels], dtype=bool)
    return Found(
        class_ids=labels[keep] - 1,
        scores=output["scores"].numpy()[keep],
        boxes=output["boxes"].numpy()[keep],
        masks=(output["masks"][:, 0] > 0.5).numpy()[keep],
    )


def served_found(found: Detections) -> Found:
    """Our detections with masks as the server encodes them, decoded by pycocotools."""
    encoded = encode_box_masks_with_areas(
        found.box_masks, found.boxes, found.image_size, found.mask_threshold
    )
    masks = decode(encoded.rles) if len(found) else np.zeros((0, *found.image_size), dtype=bool)
    return Found(
        class_ids=found.class_ids.numpy(),
        scores=found.scores.numpy(),
        boxes=found.boxes.numpy(),
        masks=masks,
    )


def assert_same_found(ours: Found, reference: Found, min_iou: float = 0.99) -> None:
    """Same detections in the same order: classes exact, scores ±1e-4, boxes ±0.5 px,
    every mask IoU ≥ ``min_iou``."""
    assert len(reference.scores) > 0, "the reference found nothing: the test proves nothing"
    np.testing.assert_array_equal(ours.class_ids, reference.class_ids)
    np.testing.assert_allclose(ours.scores, reference.scores, rtol=0, atol=1e-4)
    np.testing.assert_allclose(ours.boxes, reference.boxes, rtol=0, atol=0.5)
    assert ours.masks.shape == reference.masks.shape
    ious = mask_ious(ours.masks, reference.masks)
    assert ious.min() >= min_iou, f"mask IoUs {np.sort(ious)[:5]}"


def confident(model: MaskRCNN, label: int = 1, boost: float = 6.0) -> MaskRCNN:
    """Raise one class's logit bias so a random network emits confident detections."""
    with torch.no_grad():
        model.roi_heads.box_predictor.cls_score.bias[label] += boost
    return model.eval()
