"""Box decoding and Fast NMS."""

import torch

from maskserve.models.yolact.detect import decode_boxes, detect_image, fast_nms


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    w = (min(a[2], b[2]) - max(a[0], b[0])).clamp(min=0)
    h = (min(a[3], b[3]) - max(a[1], b[1])).clamp(min=0)
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union)


def greedy_nms(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> list[int]:
    """Plain per-class greedy NMS: a box is dropped if a KEPT higher box overlaps it."""
    kept: list[int] = []
    for i in scores.argsort(descending=True).tolist():
        if all(iou(boxes[i], boxes[j]) <= threshold for j in kept):
            kept.append(i)
    return kept


def clustered_boxes(generator: torch.Generator, clusters: int) -> torch.Tensor:
    """Far-apart clusters of 1–3 boxes that all overlap each other (IoU > 0.5): no chains."""
    boxes = []
    for c in range(clusters):
        x, y = (c % 6) * 0.16 + 0.02, (c // 6) * 0.16 + 0.02
        for _ in range(int(torch.randint(1, 4, (1,), generator=generator))):
            jitter = torch.rand(4, generator=generator) * 0.006
            boxes.append(torch.tensor([x, y, x + 0.1, y + 0.1]) + jitter)
    return torch.stack(boxes)


def test_fast_nms_agrees_with_greedy_when_no_suppressed_box_matters() -> None:
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        boxes = clustered_boxes(generator, 24)
        scores = torch.rand(3, len(boxes), generator=generator)
        coeffs = torch.arange(len(boxes), dtype=torch.float32)[:, None]
        found = fast_nms(boxes, coeffs, scores, 0.5, top_k=200, max_detections=1000)
        expected = set()
        for c in range(3):
            expected |= {(c, i) for i in greedy_nms(boxes, scores[c], 0.5)}
        got = set(zip(found.class_ids.tolist(), found.coeffs[:, 0].long().tolist(), strict=True))
        assert got == expected
        assert torch.all(found.scores[:-1] >= found.scores[1:])


def test_suppressed_boxes_still_suppress_in_fast_nms() -> None:
    a = torch.tensor([0.0, 0.0, 0.1, 0.1])
    chain = torch.stack(
        [a, a + torch.tensor([0.03, 0, 0.03, 0]), a + torch.tensor([0.06, 0, 0.06, 0])]
    )
    scores = torch.tensor([[0.9, 0.8, 0.7]])
    found = fast_nms(chain, torch.zeros(3, 1), scores, 0.5, top_k=200, max_detections=100)
    assert greedy_nms(chain, scores[0], 0.5) == [0, 2]
    assert found.scores.tolist() == [0.8999999761581421]


def test_top_k_and_max_detections_limit_the_output() -> None:
    boxes = clustered_boxes(torch.Generator().manual_seed(1), 30)
    scores = torch.rand(80, len(boxes), generator=torch.Generator().manual_seed(2))
    found = fast_nms(boxes, torch.zeros(len(boxes), 1), scores, 0.5, top_k=5, max_detections=100)
    assert len(found.scores) == 100
    per_class = torch.bincount(found.class_ids, minlength=80)
    assert int(per_class.max()) <= 5


def test_decode_offsets_against_priors() -> None:
    priors = torch.tensor([[0.5, 0.5, 0.2, 0.4]])
    loc = torch.tensor([[1.0, -1.0, 0.0, torch.log(torch.tensor(2.0)) / 0.2]])
    box = decode_boxes(loc, priors)[0]
    torch.testing.assert_close(box, torch.tensor([0.42, 0.06, 0.62, 0.86]))


def test_one_candidate_keeps_every_class_without_a_second_threshold() -> None:
    priors = torch.tensor([[0.5, 0.5, 0.2, 0.2], [0.2, 0.2, 0.1, 0.1]])
    conf = torch.full((2, 81), 1e-6)
    conf[0, 6] = 0.9
    conf[1, 0] = 1.0
    found = detect_image(torch.zeros(2, 4), conf, torch.zeros(2, 32), priors, 0.05, 0.5, 200, 100)
    assert len(found.scores) == 80
    assert int(found.class_ids[0]) == 5
    assert torch.allclose(found.boxes, torch.tensor([0.4, 0.4, 0.6, 0.6]).expand(80, 4))


def test_no_candidate_gives_an_empty_result() -> None:
    conf = torch.full((3, 81), 0.01)
    found = detect_image(
        torch.zeros(3, 4), conf, torch.zeros(3, 32), torch.rand(3, 4), 0.05, 0.5, 200, 100
    )
    assert len(found.scores) == 0 and found.boxes.shape == (0, 4)
