"""The yoloseg family: Ultralytics YOLOv8 / YOLO11 (-seg) ONNX exports served like YOLACT.

Pipeline per batch: letterbox on the device (``preprocess.py``) → one onnxruntime call
through :class:`~maskserve.models.onnxrt.session.OrtRunner` (or one call per image when
the graph's batch axis is static) → decode + NMS (``decode.py``) →
Ultralytics' retina-mask assembly as logits over each image's content (``assemble.py``) →
:class:`~maskserve.models.types.Detections`, which the server encodes like any other.

A model folder::

    family = "yoloseg"
    weights = "model.onnx"

    [yoloseg]            # every key optional; see metadata.OVERRIDE_KEYS
    conf = 0.25
    iou = 0.7
    max_det = 300
    # class_names = ["person", ...]   # else the ONNX metadata's names
    # imgsz = [640, 640]              # else the metadata's imgsz / the static input shape
    # task = "segment"                # for a file without Ultralytics' metadata
    # layout = "dense"                # or "end2end"; else from the metadata and the shapes
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from maskserve.models.base import ModelInfo
from maskserve.models.onnxrt.session import OrtRunner
from maskserve.models.registry import ModelSpec
from maskserve.models.types import Detections
from maskserve.models.yoloseg.assemble import assemble_image
from maskserve.models.yoloseg.decode import Layout, decode, detect_layout
from maskserve.models.yoloseg.metadata import (
    YolosegMeta,
    YolosegMetadataError,
    apply_overrides,
    parse_metadata,
)
from maskserve.models.yoloseg.preprocess import letterbox_images

_ONNX_FLOAT_TYPES = {"tensor(float)": torch.float32, "tensor(float16)": torch.float16}


def _static(dim: Any) -> int | None:
    """An ONNX dimension as an int, or None when it is symbolic / unknown."""
    return dim if isinstance(dim, int) and dim > 0 else None


def _input_size(meta: YolosegMeta, shape: Sequence[Any], source: str) -> tuple[int, int]:
    """The letterbox target: the static input H×W, else the metadata's / override's imgsz."""
    static_hw = (_static(shape[2]), _static(shape[3]))
    if static_hw[0] and static_hw[1]:
        hw = (static_hw[0], static_hw[1])
        if meta.imgsz is not None and meta.imgsz != hw:
            raise YolosegMetadataError(
                f"{source}: imgsz {list(meta.imgsz)} differs from the graph's static input "
                f"{list(hw)}"
            )
        return hw
    if meta.imgsz is None:
        raise YolosegMetadataError(
            f"{source}: the input has dynamic height/width and no imgsz is known; set "
            "imgsz = [H, W] in the model.toml [yoloseg] table"
        )
    return meta.imgsz


def _check_layout(layout: Layout, asked: Any, shape: Sequence[Any], source: str) -> None:
    """A model.toml ``layout`` the graph's ``output0`` does not have is an error, not a guess."""
    if asked is not None and asked != layout:
        raise YolosegMetadataError(
            f"{source}: [yoloseg] layout = {asked!r}, but output0 {list(shape)} is the "
            f"{layout!r} layout; remove the key or set layout = {layout!r}"
        )


def _extra(
    layout: Layout, input_hw: tuple[int, int], meta: YolosegMeta, dynamic_batch: bool
) -> dict[str, str]:
    """``ModelInfo.extra``: only settings this model applies.

    An end-to-end graph (``nms=True`` export, YOLO26) runs its NMS inside the graph with
    the IoU fixed at export, so ``iou`` would be a setting that does nothing: not reported.
    """
    extra = {"layout": layout, "imgsz": f"{input_hw[0]}x{input_hw[1]}", "conf": str(meta.conf)}
    if layout == "dense":
        extra["iou"] = str(meta.iou)
    extra["dynamic_batch"] = str(dynamic_batch).lower()
    return extra


class YolosegBackend:
    """An Ultralytics -seg ONNX graph on one device, producing Ultralytics' answers."""

    def __init__(
        self,
        onnx_path: Path | str,
        name: str = "yoloseg",
        device: torch.device | str = "cpu",
        overrides: dict[str, Any] | None = None,
        score_threshold: float = 0.0,
    ) -> None:
        self.device = torch.device(device)
        self.runner = OrtRunner(onnx_path, self.device)
        source = str(onnx_path)
        meta = parse_metadata(self.runner.metadata, source, overrides or {})
        meta = apply_overrides(meta, overrides or {}, source)
        inputs = self.runner.session.get_inputs()
        outputs = self.runner.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or len(outputs) != 2:
            raise YolosegMetadataError(
                f"{source}: expected one NCHW input and two outputs (detections, protos)"
            )
        self.input_name = inputs[0].name
        self.input_dtype = _ONNX_FLOAT_TYPES.get(inputs[0].type, torch.float32)
        self.dynamic_batch = _static(inputs[0].shape[0]) is None
        self.input_hw = _input_size(meta, inputs[0].shape, source)
        self.num_masks = int(outputs[1].shape[1])
        self.layout: Layout = detect_layout(
            outputs[0].shape, self.num_masks, len(meta.class_names) or None, meta.end2end
        )
        _check_layout(self.layout, (overrides or {}).get("layout"), outputs[0].shape, source)
        self.meta = self._with_class_names(meta, outputs[0].shape, source)
        self.info = ModelInfo(
            name=name,
            family="yoloseg",
            class_names=self.meta.class_names,
            input_size=max(self.input_hw),
            device=str(self.device),
            dtype=str(self.input_dtype).removeprefix("torch."),
            score_threshold=score_threshold,
            max_detections=self.meta.max_det,
            extra=_extra(self.layout, self.input_hw, self.meta, self.dynamic_batch),
        )

    def _with_class_names(
        self, meta: YolosegMeta, shape: Sequence[Any], source: str
    ) -> YolosegMeta:
        """Check the names against the dense head's class count (or invent ``'0'..``)."""
        if self.layout != "dense":
            return meta
        num_classes = int(shape[1]) - 4 - self.num_masks
        if not meta.class_names:
            return dataclasses.replace(meta, class_names=tuple(map(str, range(num_classes))))
        if len(meta.class_names) != num_classes:
            raise YolosegMetadataError(
                f"{source}: {len(meta.class_names)} class names for a head with "
                f"{num_classes} classes; set class_names (one per class) in the model.toml "
                "[yoloseg] table"
            )
        return meta

    @torch.inference_mode()
    def infer(self, images: Sequence[np.ndarray], max_detections: int) -> list[Detections]:
        """Detections for each RGB uint8 image (any sizes), at most ``max_detections`` each."""
        if not images:
            return []
        limit = max(0, min(int(max_detections), self.meta.max_det))
        batch, boxes = letterbox_images(images, self.input_hw, self.device, self.input_dtype)
        chunks = [range(len(images))] if self.dynamic_batch else [[i] for i in range(len(images))]
        results: list[Detections] = []
        for chunk in chunks:
            index = list(chunk)
            outputs = self.runner.run({self.input_name: batch[index[0] : index[-1] + 1]})
            output0, protos = (outputs[name] for name in self.runner.output_names)
            found = decode(
                output0, self.layout, self.num_masks, self.meta.conf, self.meta.iou, limit
            )
            for j, i in enumerate(index):
                results.append(
                    assemble_image(
                        protos[j].float(), found[j], boxes[i], self.input_hw, self.meta.class_names
                    )
                )
        return results


def yoloseg_backend_factory(
    spec: ModelSpec, device: torch.device, dtype: torch.dtype
) -> YolosegBackend:
    """Build from a model folder; ``weights`` is the .onnx file, ``[yoloseg]`` the overrides.

    ``dtype`` is not used: the ONNX graph fixes its own input type (reported in
    ``info.dtype``).
    """
    del dtype
    threshold = float(spec.settings.get("score_threshold", 0.0))
    return YolosegBackend(spec.weights, spec.name, device, dict(spec.table), threshold)
