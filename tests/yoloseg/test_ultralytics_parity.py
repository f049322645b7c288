"""maskserve's YOLO-seg answers equal Ultralytics' own ``predict(retina_masks=True)``.

The fixtures are real Ultralytics models, trained for a few epochs on the synthetic
shapes and exported by Ultralytics itself (``scripts/make_yoloseg_fixture``; see
``fixtures/README.md``). Ultralytics (AGPL, the ``yolo-test`` extra) runs the committed
ONNX files here to produce its own predictions; it is never imported by maskserve.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from ultralytics_parity import (
    FIXTURES,
    compare,
    import_ultralytics,
    offline_env,
    parity_images,
)

from maskserve.models.yoloseg.backend import YolosegBackend

try:
    import_ultralytics()
except ImportError:  # pragma: no cover - depends on the environment
    pytest.skip(
        "ultralytics is not installed (test-only extra: pip install -e '.[yolo-test]')",
        allow_module_level=True,
    )

pytestmark = pytest.mark.slow

# The fixtures are weak detectors (a few minutes of CPU training from scratch): their
# confidences are low, so each is compared at a conf that leaves it detections. The
# comparison is of the computation, which is the same at any conf.
CONF = {"yolov8-seg": 0.05, "yolo11-seg": 0.005, "yolov8-seg-nms": 0.05}
SCORE_TOLERANCE = 1e-3
MIN_MASK_IOU = 0.98


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    offline_env()
    return parity_images()


@pytest.mark.parametrize("name", ["yolov8-seg", "yolo11-seg", "yolov8-seg-nms"])
@pytest.mark.parametrize("iou", [0.7, 0.45])
def test_answers_match_ultralytics_retina_masks(
    name: str, iou: float, images: list[np.ndarray]
) -> None:
    result = compare(FIXTURES / f"{name}.onnx", images, conf=CONF[name], iou=iou)
    assert not result.problems, result.problems
    assert result.detections >= 5, f"the fixture should detect shapes: {result.summary()}"
    assert max(result.score_diffs) <= SCORE_TOLERANCE, result.summary()
    assert max(result.box_diffs) <= 0.01, result.summary()
    assert min(result.ious) >= MIN_MASK_IOU, result.summary()


def test_end_to_end_export_does_not_report_an_iou() -> None:
    """``nms=True``: the IoU is fixed inside the graph, so /v1/models must not show one."""
    end2end = YolosegBackend(FIXTURES / "yolov8-seg-nms.onnx")
    assert end2end.layout == "end2end"
    assert "iou" not in end2end.info.extra
    dense = YolosegBackend(FIXTURES / "yolov8-seg.onnx")
    assert dense.info.extra["iou"] == "0.7"


def test_fixture_files_stay_small() -> None:
    for path in Path(FIXTURES).glob("*.onnx"):
        assert path.stat().st_size < 6_000_000, path
