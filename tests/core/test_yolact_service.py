"""The service through the real YOLACT backend (random weights: the plumbing, not accuracy)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_util
from PIL import Image

from maskserve.metrics import Metrics
from maskserve.options import SegmentOptions
from maskserve.service import SegmentationService
from maskserve.settings import Settings

WAIT_S = 600.0  # safety bound only (shared, sometimes starved host)


def jpeg(width: int, height: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG")
    return buffer.getvalue()


def test_real_backend_batches_requests_and_returns_decodable_masks(
    tiny_yolact_repository: Path,
) -> None:
    settings = Settings(
        model_repository=tiny_yolact_repository,
        devices=["cpu"],
        max_batch_size=3,
        max_queue_delay_ms=600_000,
        request_timeout_s=3600,
        adaptive_batching=False,  # this test is about one batch of 3: no size choice
    )
    metrics = Metrics(gpu=False)
    sizes = [(120, 90), (64, 100), (200, 150)]
    options = SegmentOptions(score_threshold=0.0, max_detections=5)

    async def body() -> list:
        service = SegmentationService(settings, metrics)
        await service.start()
        try:
            assert service.ready
            assert [m.name for m in service.list_models()] == ["tiny"]
            requests = (
                service.segment("tiny", jpeg(w, h, i), options) for i, (w, h) in enumerate(sizes)
            )
            return await asyncio.wait_for(asyncio.gather(*requests), WAIT_S)
        finally:
            await service.stop()

    results = asyncio.run(body())
    assert any(result.detections for result in results)  # so the mask checks below ran
    for (width, height), result in zip(sizes, results, strict=True):
        assert (result.width, result.height) == (width, height)
        assert len(result.detections) <= 5
        for detection in result.detections:
            rle = {
                "size": [detection.mask.height, detection.mask.width],
                "counts": detection.mask.counts,
            }
            assert mask_util.decode(rle).shape == (height, width)
    batches = metrics.registry.get_sample_value("maskserve_batch_size_sum", {"model": "tiny"})
    count = metrics.registry.get_sample_value("maskserve_batch_size_count", {"model": "tiny"})
    assert (batches, count) == (3.0, 1.0)  # one forward pass served all three
