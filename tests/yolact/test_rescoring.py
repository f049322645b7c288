"""YOLACT++ mask re-scoring: scores, order and the detection cap, on hand-built outputs."""

from dataclasses import replace

import pytest
import torch

from maskserve.models.yolact.config import CONFIGS, YolactConfig
from maskserve.models.yolact.network import RawOutputs
from maskserve.models.yolact.predictor import YolactPostprocess

IMAGE_SIZE = (100, 100)
# Three far-apart priors; each has one confident class (0-based ids 2, 5 and 7).
PRIORS = torch.tensor([[0.2, 0.2, 0.1, 0.1], [0.5, 0.5, 0.1, 0.1], [0.8, 0.8, 0.1, 0.1]])
CONFIDENT = {2: 0.9, 5: 0.6, 7: 0.3}
# Per-class maskiou the fake re-scoring net returns: it reverses the box-score order.
MASKIOU = {2: 0.1, 5: 0.5, 7: 3.0}
RESCORING = replace(CONFIGS["yolact_plus_base"], rescore_bbox=True)


def raw_outputs() -> RawOutputs:
    conf = torch.full((1, 3, 81), 1e-4)
    for prior, (class_id, score) in enumerate(CONFIDENT.items()):
        conf[0, prior, class_id + 1] = score
    return RawOutputs(
        loc=torch.zeros(1, 3, 4),
        conf=conf,
        coeffs=torch.ones(1, 3, 4),
        proto=torch.ones(1, 8, 8, 4),
        priors=PRIORS,
    )


def fake_maskiou(lowres: torch.Tensor) -> torch.Tensor:
    per_class = torch.zeros(80)
    for class_id, value in MASKIOU.items():
        per_class[class_id] = value
    return per_class.expand(lowres.shape[0], 80)


def run(config: YolactConfig, max_detections: int | None = None):
    post = YolactPostprocess(config, fake_maskiou)
    raw = raw_outputs()
    found = post.detect(raw, max_detections)
    return post.assemble(raw, found, [IMAGE_SIZE], max_detections=max_detections)[0]


def test_scores_become_score_times_maskiou_and_the_order_follows_them() -> None:
    dets = run(RESCORING)
    assert dets.class_ids[:3].tolist() == [7, 5, 2]
    expected = torch.tensor([0.3 * 3.0, 0.6 * 0.5, 0.9 * 0.1])
    torch.testing.assert_close(dets.scores[:3], expected)
    assert torch.all(dets.scores[:-1] >= dets.scores[1:])
    assert dets.mask_scores is not None and torch.equal(dets.mask_scores, dets.scores)
    # Boxes and masks travel with their detection: class 7 sits on the third prior.
    assert dets.boxes[0].tolist() == [75.0, 75.0, 85.0, 85.0]
    assert dets.proto_windows is not None
    assert dets.proto_windows[0].tolist() == [5, 5, 8, 8]


@pytest.mark.parametrize("name", ["yolact_plus_base", "yolact_plus_resnet50"])
def test_published_plus_configs_keep_box_scores_and_detect_order(name: str) -> None:
    """The reference's evaluation path: box scores in Detect's order, mask scores apart."""
    dets = run(CONFIGS[name])
    assert dets.class_ids[:3].tolist() == [2, 5, 7]
    torch.testing.assert_close(dets.scores[:3], torch.tensor([0.9, 0.6, 0.3]))
    assert dets.mask_scores is not None
    torch.testing.assert_close(dets.mask_scores[:3], torch.tensor([0.09, 0.3, 0.9]))


@pytest.mark.parametrize("limit", [1, 2])
def test_the_detection_cap_applies_after_re_sorting(limit: int) -> None:
    dets = run(RESCORING, max_detections=limit)
    assert dets.class_ids.tolist() == [7, 5][:limit]


def test_detect_still_keeps_the_reference_hundred_before_re_sorting() -> None:
    post = YolactPostprocess(RESCORING, fake_maskiou)
    assert len(post.detect(raw_outputs(), 1)[0].scores) == 100
    plain = YolactPostprocess(CONFIGS["yolact_base"])
    assert len(plain.detect(raw_outputs(), 1)[0].scores) == 1
