"""Export a torchvision :class:`MaskRCNN` to ONNX, up to the 28×28 mask probabilities.

The graph (:class:`MaskRcnnGraph`) holds the same stages as the eager predictor —
``transform`` (normalise + resize), ``backbone``, ``rpn``, ``roi_heads`` — plus the box
rescale to original pixels. It stops before torchvision's full-image paste, which would
send N × H × W float32 out of the graph; the server pastes box-locally instead.
Graph contract:

* input ``image`` [3, H, W] float32 RGB in [0, 1], H and W dynamic; **one image per
  call** (see :func:`export_maskrcnn` for why);
* outputs ``boxes`` [n, 4] float32 (x1, y1, x2, y2) in original-image pixels,
  ``labels`` [n] int64 (torchvision labels, 0 = background), ``scores`` [n] float32,
  ``masks`` [n, 28, 28] float32 probabilities of the predicted class; n ≤
  ``detections_per_img``, sorted by score;
* ``metadata_props``: family, class names, the full config (``config_to_dict`` as
  JSON) and the producer, so a backend can be rebuilt from the file alone. Sizes,
  RPN/box thresholds and ``detections_per_img`` are traced in as constants.

Exporter: the TorchScript one (``dynamo=False``). The dynamo exporter fails on
torchvision's data-dependent ``batched_nms`` branch (reference ``maskrcnn.md`` §7.1).
torchvision registers ONNX symbolics for ``nms`` at opset 11 and ``roi_align`` at 11
and 16; the default here is 17.
"""

from __future__ import annotations

import copy
import logging
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.transform import resize_boxes
from torchvision.ops import box_iou

from maskserve.models.maskrcnn.config import MaskRcnnConfig, config_to_dict
from maskserve.models.onnxrt.metadata import base_metadata, write_metadata

log = logging.getLogger(__name__)

FAMILY = "maskrcnn"
INPUT_NAME = "image"
OUTPUT_NAMES = ("boxes", "labels", "scores", "masks")
DEFAULT_OPSET = 17
MIN_OPSET = 11  # torchvision's nms / roi_align symbolics
EXAMPLE_SIZE = (224, 288)  # (H, W) traced; the verification uses other sizes
VERIFY_SIZES = ((176, 240), (280, 208))
MATCH_IOU = 0.5


@dataclass
class ExportResult:
    """What :func:`export_maskrcnn` wrote and how well ONNX Runtime reproduces eager.

    ``max_abs_diff`` is over detections matched by IoU (``boxes`` in pixels, ``scores``,
    ``masks`` the 28×28 probabilities); ``unmatched`` counts detections present on one
    side only (e.g. a score within rounding of ``box_score_thresh``).
    """

    path: Path
    opset: int
    exporter: str = "torchscript"
    dtype: str = "float32"
    seconds: float = 0.0
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    detections: int = 0
    unmatched: int = 0


class MaskRcnnGraph(nn.Module):
    """What the ONNX graph computes for one image (see the module docstring)."""

    def __init__(self, model: MaskRCNN) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, ...]:
        model = self.model
        batch, _ = model.transform([image])
        features = model.backbone(batch.tensors)
        proposals, _ = model.rpn(batch, features)
        found, _ = model.roi_heads(features, proposals, batch.image_sizes)
        det = found[0]
        boxes = resize_boxes(det["boxes"], batch.image_sizes[0], image.shape[-2:])
        return boxes, det["labels"], det["scores"], det["masks"][:, 0]


def traced_settings(model: MaskRCNN) -> dict[str, float | int]:
    """The inference settings ``model`` would trace into the graph, by config field name."""
    return {
        "min_size": int(model.transform.min_size[-1]),
        "max_size": int(model.transform.max_size),
        "rpn_pre_nms_top_n_test": int(model.rpn._pre_nms_top_n["testing"]),
        "rpn_post_nms_top_n_test": int(model.rpn._post_nms_top_n["testing"]),
        "rpn_nms_thresh": float(model.rpn.nms_thresh),
        "box_score_thresh": float(model.roi_heads.score_thresh),
        "box_nms_thresh": float(model.roi_heads.nms_thresh),
        "detections_per_img": int(model.roi_heads.detections_per_img),
    }


def check_consistent(model: MaskRCNN, config: MaskRcnnConfig) -> None:
    """Refuse to write metadata that disagrees with what the network will trace."""
    wrong = [
        f"{key}: model {value!r} vs config {getattr(config, key)!r}"
        for key, value in traced_settings(model).items()
        if value != getattr(config, key)
    ]
    if config.num_classes != model.roi_heads.box_predictor.cls_score.out_features:
        wrong.append(
            f"classes: model {model.roi_heads.box_predictor.cls_score.out_features} "
            f"vs config {config.num_classes}"
        )
    if wrong:
        raise ValueError(
            "the network was built with other inference settings than the config it is "
            f"exported with (build it from the config): {'; '.join(wrong)}"
        )


def structured_image(size: tuple[int, int], seed: int) -> torch.Tensor:
    """[3, H, W] float in [0, 1]: 8-px colour blocks, so the network sees edges, not noise."""
    rng = np.random.default_rng(seed)
    height, width = size
    blocks = rng.integers(0, 256, (3, -(-height // 8), -(-width // 8))).astype(np.float32)
    full = np.kron(blocks, np.ones((1, 8, 8), dtype=np.float32))[:, :height, :width]
    return torch.from_numpy(np.ascontiguousarray(full)) / 255.0


def build_metadata(config: MaskRcnnConfig, opset: int) -> dict[str, str]:
    """``metadata_props`` of an exported Mask R-CNN graph."""
    return {
        **base_metadata(
            FAMILY, config.class_names, config_to_dict(config), config.name, "torchscript"
        ),
        "opset": str(opset),
        "input": f"{INPUT_NAME}: [3, H, W] float32 RGB in [0, 1]; batch 1",
        "outputs": ",".join(OUTPUT_NAMES),
    }


def export_maskrcnn(
    model: MaskRCNN,
    config: MaskRcnnConfig,
    path: Path | str,
    opset: int | None = None,
    verify: bool = True,
) -> ExportResult:
    """Export ``model`` (left untouched) to ``path``; check it and, if ``verify``, compare.

    **Batch = 1 per graph call.** The legacy exporter traces Python: torchvision's
    ``GeneralizedRCNN`` takes a *list* of images, and the tracer flattens that list into
    one graph input per traced image, each with its own fixed rank-3 shape (exporting
    with two images gives two inputs and eight outputs). The per-image Python loops in
    ``transform``, ``rpn`` and ``roi_heads`` are unrolled for the traced list length as
    well, so no dynamic batch axis exists to mark. The graph therefore takes one
    [3, H, W] image (dynamic H, W) and callers batch by looping.
    """
    opset = DEFAULT_OPSET if opset is None else opset
    if opset < MIN_OPSET:
        raise ValueError(f"Mask R-CNN needs opset >= {MIN_OPSET} (nms, RoiAlign); got {opset}")
    check_consistent(model, config)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    graph = MaskRcnnGraph(copy.deepcopy(model).cpu().float().eval()).eval()
    log.info("exporting %s to %s (torchscript exporter, opset %d)", config.name, path, opset)
    began = time.perf_counter()
    _export_graph(graph, structured_image(EXAMPLE_SIZE, seed=0), path, opset)
    write_metadata(path, build_metadata(config, opset))
    result = ExportResult(path=path, opset=opset, seconds=time.perf_counter() - began)
    if verify:
        result.max_abs_diff, result.detections, result.unmatched = verify_export(graph, path)
        if result.unmatched:
            log.warning(
                "%s: %d of %d detections have no IoU match between eager and onnxruntime",
                path,
                result.unmatched,
                result.detections,
            )
    return result


def _export_graph(graph: MaskRcnnGraph, example: torch.Tensor, path: Path, opset: int) -> None:
    axes = {INPUT_NAME: {1: "height", 2: "width"}}
    axes.update({name: {0: "detections"} for name in OUTPUT_NAMES})
    with warnings.catch_warnings(), torch.no_grad():
        # TracerWarnings (shape-dependent Python in torchvision) and the exporter's
        # deprecation notice; both are expected for this model (reference §7.2).
        warnings.simplefilter("ignore")
        torch.onnx.export(
            graph,
            (example,),
            str(path),
            dynamo=False,
            opset_version=opset,
            do_constant_folding=True,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=axes,
        )


def verify_export(
    graph: MaskRcnnGraph, path: Path | str, sizes: tuple[tuple[int, int], ...] = VERIFY_SIZES
) -> tuple[dict[str, float], int, int]:
    """(max abs diffs, eager detections, unmatched) of eager ``graph`` vs ONNX Runtime.

    Detections are paired by IoU (same label, greedy in eager score order), not by
    index: near-tied scores can come out in a different order.
    """
    from maskserve.models.onnxrt.session import OrtRunner

    runner = OrtRunner(path, "cpu")
    diffs = {"boxes": 0.0, "scores": 0.0, "masks": 0.0}
    total = unmatched = 0
    for seed, size in enumerate(sizes, start=1):
        image = structured_image(size, seed)
        with torch.inference_mode():
            eager = dict(zip(OUTPUT_NAMES, graph(image), strict=True))
        got = runner.run({INPUT_NAME: image})
        mine, theirs = match_detections(eager, got)
        total += len(eager["scores"])
        unmatched += len(eager["scores"]) + len(got["scores"]) - 2 * len(mine)
        for name in diffs:
            diffs[name] = max(diffs[name], _max_diff(eager[name][mine], got[name][theirs]))
    return diffs, total, unmatched


def match_detections(
    a: dict[str, torch.Tensor], b: dict[str, torch.Tensor], min_iou: float = MATCH_IOU
) -> tuple[torch.Tensor, torch.Tensor]:
    """Index pairs (into ``a``, into ``b``) of same-label detections, greedy by IoU.

    ``a`` is visited in its order (score order); each row takes the unmatched row of
    ``b`` with the same label and the highest IoU, if that IoU is at least ``min_iou``.
    """
    iou = box_iou(a["boxes"].float(), b["boxes"].float())
    iou[a["labels"][:, None] != b["labels"][None, :]] = -1.0
    left: list[int] = []
    right: list[int] = []
    for row in range(iou.shape[0]):
        if iou.shape[1] == 0:
            break
        best = int(iou[row].argmax())
        if float(iou[row, best]) >= min_iou:
            left.append(row)
            right.append(best)
            iou[:, best] = -1.0
    return torch.tensor(left, dtype=torch.long), torch.tensor(right, dtype=torch.long)


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max()) if a.numel() else 0.0
