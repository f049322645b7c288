"""Core sharing: threads per batch follow the workers busy now, not the models loaded."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client.parser import text_string_to_metric_families

from maskserve.cpu_share import CoreShare
from maskserve.metrics import Metrics
from maskserve.options import SegmentOptions
from maskserve.service import SegmentationService
from maskserve.settings import Settings
from maskserve.workers import available_cores


def test_one_busy_worker_gets_every_core_and_two_split_them() -> None:
    given: list[int] = []
    share = CoreShare(8, set_threads=given.append)
    with share.running() as first:
        assert first == 8 and share.busy == 1
        with share.running() as second:
            assert second == 4 and share.busy == 2
            with share.running() as third:
                assert third == 2
    assert share.busy == 0
    with share.running() as alone_again:
        assert alone_again == 8
    assert given == [8, 4, 2, 8]


def test_never_fewer_than_one_thread() -> None:
    share = CoreShare(1, set_threads=lambda _: None)
    with share.running() as a, share.running() as b:
        assert (a, b) == (1, 1)


def threads_metric(metrics: Metrics) -> dict[str, float]:
    return {
        sample.labels["model"]: sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        if family.name == "maskserve_intra_op_threads"
        for sample in family.samples
    }


@pytest.mark.slow
def test_with_both_shipped_models_loaded_the_busy_one_gets_every_core() -> None:
    """The default server (both shipped models): the idle model holds no cores."""
    from maskserve.models.registry import ZOO_DIR

    example = (ZOO_DIR / "yolact_shapes" / "example.png").read_bytes()
    metrics = Metrics(gpu=False)
    settings = Settings(devices=["cpu"], max_batch_size=1)
    assert settings.share_cpu_cores and settings.model_repository == ZOO_DIR

    async def body() -> None:
        service = SegmentationService(settings, metrics)
        await service.start()
        try:
            assert {m.name for m in service.list_models()} >= {"yolact_shapes", "maskrcnn_shapes"}
            result = await service.segment("yolact_shapes", example, SegmentOptions())
            assert result.detections
        finally:
            await service.stop()

    asyncio.run(body())
    assert threads_metric(metrics)["yolact_shapes"] == available_cores()
