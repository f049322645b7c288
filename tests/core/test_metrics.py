"""/metrics content: parses with prometheus_client's own parser, and moves with traffic."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from core_fakes import NO_TIMEOUT_S, png, write_fake_model
from prometheus_client.parser import text_string_to_metric_families

from maskserve.errors import ModelNotFoundError
from maskserve.logging_setup import configure_logging
from maskserve.metrics import Metrics
from maskserve.options import SegmentOptions
from maskserve.service import SegmentationService
from maskserve.settings import Settings


def samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = metrics.render().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_exposition_parses_and_counters_move(tmp_path: Path) -> None:
    write_fake_model(tmp_path, "m")
    metrics = Metrics()
    settings = Settings(
        model_repository=tmp_path,
        devices=["cpu"],
        max_batch_size=2,
        request_timeout_s=NO_TIMEOUT_S,
    )

    async def body() -> None:
        service = SegmentationService(settings, metrics)
        await service.start()
        try:
            await asyncio.gather(*(service.segment("m", png(v), SegmentOptions()) for v in (1, 2)))
            await service.segment("m", png(3), SegmentOptions(), protocol="grpc")
            with pytest.raises(ModelNotFoundError):
                await service.segment("nope", png(4), SegmentOptions())
        finally:
            await service.stop()

    before = samples(metrics)
    asyncio.run(body())
    after = samples(metrics)
    ok_rest = ("maskserve_requests_total", (("model", "m"), ("protocol", "rest"), ("status", "ok")))
    assert ok_rest not in before and after[ok_rest] == 2
    grpc = ("maskserve_requests_total", (("model", "m"), ("protocol", "grpc"), ("status", "ok")))
    assert after[grpc] == 1
    unknown = (("model", "_unknown"), ("protocol", "rest"), ("status", "model_not_found"))
    assert after[("maskserve_requests_total", unknown)] == 1
    model = (("model", "m"),)
    assert after[("maskserve_request_duration_seconds_count", (*model, ("protocol", "rest")))] == 2
    assert after[("maskserve_queue_duration_seconds_count", model)] == 3
    assert after[("maskserve_postprocess_duration_seconds_count", model)] == 3
    assert after[("maskserve_inference_duration_seconds_count", (("device", "cpu"), *model))] >= 2
    assert after[("maskserve_batch_size_sum", model)] == 3
    assert after[("maskserve_queue_depth", model)] == 0
    assert after[("maskserve_inflight_requests", model)] == 0
    assert after[("maskserve_process_resident_memory_bytes", ())] > 0
    bucket = (
        "maskserve_request_duration_seconds_bucket",
        (("le", "0.001"), *model, ("protocol", "rest")),
    )
    assert bucket in after
    assert not any(name.startswith("maskserve_gpu_") for name, _ in after)  # CPU-only host


def test_json_log_lines_carry_message_level_and_extras() -> None:
    stream = io.StringIO()
    configure_logging("info", "json", stream)
    try:
        logging.getLogger("maskserve.test").info("hello %s", "world", extra={"model": "m"})
        logging.getLogger("maskserve.test").debug("hidden")
    finally:
        configure_logging("warning", "text")
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["message"] == "hello world" and entry["level"] == "info"
    assert entry["logger"] == "maskserve.test" and entry["model"] == "m"


class FakeNvml:
    """Stands in for pynvml: no GPU on the test host, but the scrape path must be sound."""

    def nvmlInit(self) -> None:  # noqa: N802 - pynvml's names
        pass

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> str:  # noqa: N802
        assert uuid == "GPU-1234"
        return uuid

    def nvmlDeviceGetMemoryInfo(self, handle: str) -> SimpleNamespace:  # noqa: N802
        return SimpleNamespace(used=3_000, total=80_000)

    def nvmlDeviceGetUtilizationRates(self, handle: str) -> SimpleNamespace:  # noqa: N802
        return SimpleNamespace(gpu=42)


def test_gpu_series_are_read_at_scrape_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda index: 1_000)
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda index: 2_000)
    props = SimpleNamespace(uuid="1234")
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml())
    found = samples(Metrics())
    device = (("device", "cuda:0"),)
    assert found[("maskserve_gpu_memory_allocated_bytes", device)] == 1_000
    assert found[("maskserve_gpu_memory_reserved_bytes", device)] == 2_000
    assert found[("maskserve_gpu_memory_used_bytes", device)] == 3_000
    assert found[("maskserve_gpu_memory_total_bytes", device)] == 80_000
    assert found[("maskserve_gpu_utilization_ratio", device)] == pytest.approx(0.42)
