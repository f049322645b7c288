"""Ultralytics' ONNX custom metadata → a typed :class:`YolosegMeta`, plus model.toml overrides.

The exporter writes every value with ``str(value)``: Python reprs, not JSON (``{0: 'person'}``,
``[640, 640]``, ``False``), and bare strings for text (``segment``). Structured values are
therefore parsed with :func:`ast.literal_eval` — never ``eval`` — and text values are taken
as they are. See ``shared/reference/yoloseg.md`` §1.

Thresholds are not in the metadata; the defaults are Ultralytics' predict defaults
(conf 0.25, iou 0.7, max_det 300). A model folder's ``[yoloseg]`` table may override the
class names, the input size and the thresholds, and supply what a file without
Ultralytics' metadata lacks (``task``, ``layout``): :data:`OVERRIDE_KEYS`. The backend
checks all of them against the graph's shapes.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_CONF = 0.25
DEFAULT_IOU = 0.7
DEFAULT_MAX_DET = 300
OVERRIDE_KEYS = frozenset({"task", "class_names", "imgsz", "layout", "conf", "iou", "max_det"})
LAYOUTS = ("dense", "end2end")


class YolosegMetadataError(ValueError):
    """The ONNX file is not a usable Ultralytics segmentation export (or overrides are bad)."""


@dataclass(frozen=True)
class YolosegMeta:
    """What the decoder needs to know about an export.

    Attributes:
        class_names: names by 0-based class index (empty when the file has none).
        imgsz: (height, width) the graph was exported for; None when unknown (then the
            static input shape decides, see the backend).
        stride: the largest head stride (32 for every YOLOv8/11 model).
        end2end: the head (YOLO26 end-to-end, or an ``nms=True`` export) already returns
            final ``[x1, y1, x2, y2, score, class, coeffs]`` rows.
        conf: keep candidates whose best class score is strictly above this.
        iou: class-aware NMS IoU threshold.
        max_det: most detections per image.
    """

    class_names: tuple[str, ...]
    imgsz: tuple[int, int] | None
    stride: int = 32
    end2end: bool = False
    conf: float = DEFAULT_CONF
    iou: float = DEFAULT_IOU
    max_det: int = DEFAULT_MAX_DET


def _literal(raw: Mapping[str, str], key: str, source: str) -> Any:
    """``ast.literal_eval`` of one metadata value, with the key named on failure."""
    text = raw[key].strip()
    if text.lower() in ("true", "false"):  # tolerate JSON-style booleans
        return text.lower() == "true"
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError) as exc:
        raise YolosegMetadataError(
            f"{source}: metadata {key!r} is not a Python literal: {text[:80]!r}"
        ) from exc


def names_from_value(value: Any, source: str) -> tuple[str, ...]:
    """Class names from a ``{index: name}`` dict or a list; gaps are filled with the index."""
    if isinstance(value, Mapping):
        try:
            by_index = {int(k): str(v) for k, v in value.items()}
        except (TypeError, ValueError) as exc:
            raise YolosegMetadataError(f"{source}: names keys must be integers") from exc
        if by_index and min(by_index) < 0:
            raise YolosegMetadataError(f"{source}: names has a negative class index")
        count = max(by_index) + 1 if by_index else 0
        return tuple(by_index.get(i, str(i)) for i in range(count))
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    raise YolosegMetadataError(f"{source}: names must be a dict or a list, got {type(value)}")


def imgsz_from_value(value: Any, source: str) -> tuple[int, int]:
    """``640`` or ``[H, W]`` → (H, W), positive integers."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value, value]
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)
    ):
        raise YolosegMetadataError(f"{source}: imgsz must be an int or [H, W], got {value!r}")
    return int(value[0]), int(value[1])


def _end2end(raw: Mapping[str, str], source: str) -> bool:
    """True for an end-to-end head or an export with NMS inside the graph (``args.nms``)."""
    end2end = bool(_literal(raw, "end2end", source)) if "end2end" in raw else False
    if "args" in raw:
        try:
            args = ast.literal_eval(raw["args"].strip())
        except (ValueError, SyntaxError):
            args = None
        if isinstance(args, Mapping) and args.get("nms"):
            end2end = True
    return end2end


def parse_metadata(
    raw: Mapping[str, str], source: str = "model", table: Mapping[str, Any] | None = None
) -> YolosegMeta:
    """Parse ``custom_metadata_map``; refuses anything whose ``task`` is not ``segment``.

    ``table`` (the model.toml ``[yoloseg]`` table) may supply the ``task`` of a file
    without metadata; its other keys are applied by :func:`apply_overrides`.

    Raises:
        YolosegMetadataError: no ``task`` (not an Ultralytics export, or its metadata was
            stripped: the message says which model.toml key to add), a task other than
            ``segment`` (a detect / pose / classify model would decode into garbage),
            or an unparsable value.
    """
    task = raw.get("task")
    if table is not None and "task" in table:
        task = str(table["task"])
    if task is None:
        raise YolosegMetadataError(
            f"{source}: the ONNX metadata has no 'task' key (not an Ultralytics export, or "
            'its metadata was stripped). If it is a YOLO-seg model, add task = "segment" '
            "to the model.toml [yoloseg] table (and class_names = [...], which the file "
            "does not name either)"
        )
    if task.strip().strip("'\"") != "segment":
        raise YolosegMetadataError(
            f"{source}: Ultralytics task is {task.strip()!r}, but the yoloseg family serves "
            "only task='segment' models (export a -seg model)"
        )
    names = names_from_value(_literal(raw, "names", source), source) if "names" in raw else ()
    imgsz = imgsz_from_value(_literal(raw, "imgsz", source), source) if "imgsz" in raw else None
    stride = _literal(raw, "stride", source) if "stride" in raw else 32
    if isinstance(stride, list | tuple):  # some versions write a list of strides
        stride = max(stride)
    return YolosegMeta(
        class_names=names,
        imgsz=imgsz,
        stride=int(stride),
        end2end=_end2end(raw, source),
    )


def apply_overrides(meta: YolosegMeta, table: Mapping[str, Any], source: str) -> YolosegMeta:
    """Apply a model.toml ``[yoloseg]`` table (keys in :data:`OVERRIDE_KEYS`) to ``meta``."""
    unknown = set(table) - OVERRIDE_KEYS
    if unknown:
        raise YolosegMetadataError(
            f"{source}: unknown [yoloseg] keys {sorted(unknown)}; allowed: {sorted(OVERRIDE_KEYS)}"
        )
    changes: dict[str, Any] = {}
    if "class_names" in table:
        changes["class_names"] = names_from_value(table["class_names"], source)
    if "imgsz" in table:
        changes["imgsz"] = imgsz_from_value(table["imgsz"], source)
    if "layout" in table:
        if table["layout"] not in LAYOUTS:
            raise YolosegMetadataError(
                f"{source}: layout must be one of {list(LAYOUTS)}, got {table['layout']!r}"
            )
        changes["end2end"] = table["layout"] == "end2end"
    for key in ("conf", "iou"):
        if key in table:
            value = table[key]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise YolosegMetadataError(f"{source}: {key} must be a number, got {value!r}")
            if not 0.0 <= float(value) <= 1.0:
                raise YolosegMetadataError(f"{source}: {key} must be in [0, 1], got {value}")
            changes[key] = float(value)
    if "max_det" in table:
        value = table["max_det"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise YolosegMetadataError(f"{source}: max_det must be a positive int, got {value!r}")
        changes["max_det"] = value
    return dataclasses.replace(meta, **changes)
