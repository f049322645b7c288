"""Ultralytics metadata parsing (Python reprs) and model.toml overrides."""

from __future__ import annotations

import pytest

from maskserve.models.yoloseg.metadata import (
    YolosegMetadataError,
    apply_overrides,
    parse_metadata,
)


def ultralytics_values(**changes: str) -> dict[str, str]:
    raw = {
        "task": "segment",
        "names": "{0: 'person', 1: 'bicycle', 2: 'car'}",
        "imgsz": "[640, 640]",
        "stride": "32",
        "end2end": "False",
        "args": "{'batch': 1, 'nms': None, 'dynamic': False}",
    }
    raw.update(changes)
    return raw


def test_parses_python_reprs() -> None:
    meta = parse_metadata(ultralytics_values())
    assert meta.class_names == ("person", "bicycle", "car")
    assert meta.imgsz == (640, 640) and meta.stride == 32 and meta.end2end is False
    assert (meta.conf, meta.iou, meta.max_det) == (0.25, 0.7, 300)


@pytest.mark.parametrize("task", ["detect", "pose", "classify", "obb"])
def test_tasks_other_than_segment_are_refused(task: str) -> None:
    with pytest.raises(YolosegMetadataError, match=f"task is '{task}'"):
        parse_metadata(ultralytics_values(task=task))


def test_missing_task_is_refused() -> None:
    raw = ultralytics_values()
    del raw["task"]
    with pytest.raises(YolosegMetadataError, match="no 'task' key"):
        parse_metadata(raw)


def test_values_are_never_evaluated_as_code() -> None:
    with pytest.raises(YolosegMetadataError, match="'names' is not a Python literal"):
        parse_metadata(ultralytics_values(names="__import__('os').getcwd()"))


def test_end2end_from_metadata_or_from_an_nms_export() -> None:
    assert parse_metadata(ultralytics_values(end2end="True")).end2end
    assert parse_metadata(ultralytics_values(args="{'nms': True}")).end2end


def test_names_with_gaps_and_lists() -> None:
    assert parse_metadata(ultralytics_values(names="{0: 'a', 2: 'c'}")).class_names == (
        "a",
        "1",
        "c",
    )
    assert parse_metadata(ultralytics_values(names="['x', 'y']")).class_names == ("x", "y")


def test_overrides_replace_names_size_and_thresholds() -> None:
    meta = apply_overrides(
        parse_metadata(ultralytics_values()),
        {"class_names": ["a", "b", "c"], "imgsz": 320, "conf": 0.5, "iou": 0.4, "max_det": 7},
        "model.toml",
    )
    assert meta.class_names == ("a", "b", "c") and meta.imgsz == (320, 320)
    assert (meta.conf, meta.iou, meta.max_det) == (0.5, 0.4, 7)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"confidence": 0.3}, "unknown"),
        ({"conf": 1.5}, "conf must be in"),
        ({"iou": "high"}, "iou must be a number"),
        ({"max_det": 0}, "max_det must be a positive int"),
        ({"imgsz": [1, 2, 3]}, "imgsz must be"),
    ],
)
def test_bad_overrides_are_refused(table: dict, message: str) -> None:
    with pytest.raises(YolosegMetadataError, match=message):
        apply_overrides(parse_metadata(ultralytics_values()), table, "model.toml")


def test_model_toml_supplies_the_task_of_a_file_without_metadata() -> None:
    with pytest.raises(YolosegMetadataError, match=r'add task = "segment" to the model.toml'):
        parse_metadata({}, "bare.onnx")
    meta = parse_metadata({}, "bare.onnx", {"task": "segment"})
    assert meta.class_names == () and meta.imgsz is None and not meta.end2end
    with pytest.raises(YolosegMetadataError, match="task is 'detect'"):
        parse_metadata({}, "bare.onnx", {"task": "detect"})


@pytest.mark.parametrize(("layout", "end2end"), [("dense", False), ("end2end", True)])
def test_layout_key_sets_the_decoder(layout: str, end2end: bool) -> None:
    meta = apply_overrides(parse_metadata({}, "x", {"task": "segment"}), {"layout": layout}, "x")
    assert meta.end2end is end2end
    with pytest.raises(YolosegMetadataError, match="layout must be one of"):
        apply_overrides(meta, {"layout": "grid"}, "x")
