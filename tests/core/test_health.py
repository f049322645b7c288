"""Faults contained: the watchdog replaces a hung worker; a model that keeps failing is
marked not ready and comes back when its probe succeeds (fake family, real service)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from core_fakes import WAIT_S, png, serving, until, write_fake_model

from maskserve import service as service_module
from maskserve.errors import InferenceError, ModelNotReadyError
from maskserve.health import FAILURES_TO_UNREADY
from maskserve.options import SegmentOptions
from maskserve.service import SegmentationService

RAW = SegmentOptions(mask_format="none")


def ready_gauge(service: SegmentationService) -> float | None:
    return service.metrics.registry.get_sample_value("maskserve_model_ready", {"model": "m"})


def test_a_hung_batch_fails_and_its_worker_is_replaced(tmp_path: Path) -> None:
    control = write_fake_model(tmp_path, "m")
    hung = threading.Event()

    async def body() -> None:
        async with serving(tmp_path, max_batch_size=1, worker_watchdog_s=0.5) as service:
            control.gate = hung  # the next batch waits on it: a forward that never returns
            with pytest.raises(InferenceError, match="did not finish within the watchdog"):
                await service.segment("m", png(1), RAW)
            control.gate = None
            result = await service.segment("m", png(2), RAW)  # on the replacement
            assert result.detections[0].score == pytest.approx(2 / 255)
            worker = service._models["m"].workers[0]
            assert worker.replacements == 1 and not worker.retired
            assert service.ready

    try:
        asyncio.run(body())
    finally:
        hung.set()  # let the abandoned thread finish


def test_a_failing_model_is_not_ready_until_its_probe_succeeds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module, "PROBE_INTERVAL_S", 0.01)
    control = write_fake_model(tmp_path, "m")

    async def body() -> None:
        async with serving(tmp_path, max_batch_size=1) as service:
            assert ready_gauge(service) == 1
            probes = service._probes
            monkeypatch.setattr(service_module.SegmentationService, "_probe", hold(probes))
            for number in range(FAILURES_TO_UNREADY):
                control.fail_next = RuntimeError(f"boom {number}")
                with pytest.raises(InferenceError):
                    await service.segment("m", png(number + 1), RAW)
            assert not service.ready and ready_gauge(service) == 0
            with pytest.raises(ModelNotReadyError, match="batches failed"):
                await service.segment("m", png(9), RAW)
            assert service.model_states()[0][:2] == ("m", "UNAVAILABLE")
            release.set()
            await asyncio.wait_for(until(lambda: service.ready), WAIT_S)
            assert ready_gauge(service) == 1
            result = await service.segment("m", png(10), RAW)
            assert result.detections[0].score == pytest.approx(10 / 255)

    release = asyncio.Event()
    original = service_module.SegmentationService._probe

    def hold(probes: set) -> Any:
        async def held(self: SegmentationService, name: str, health: Any) -> None:
            await release.wait()  # the test looks at the not-ready state first
            await original(self, name, health)

        return held

    asyncio.run(body())
