"""The shared service end to end on the fake family: batching, failures, deadlines, drain."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from core_fakes import WAIT_S, FakeControl, png, serving, until, write_fake_model

from maskserve.errors import (
    DeadlineExceededError,
    ImageTooLargeError,
    InferenceError,
    InvalidImageError,
    InvalidOptionError,
    ModelNotFoundError,
    ModelNotReadyError,
    OverloadedError,
)
from maskserve.masks.rle import Rle
from maskserve.metrics import Metrics
from maskserve.options import SegmentOptions
from maskserve.service import SegmentationService
from maskserve.settings import Settings

RAW = SegmentOptions(mask_format="none")


async def hold_worker(service: SegmentationService, control: FakeControl) -> asyncio.Task:
    """Start a request (value 200) whose batch blocks on the control's gate."""
    control.gate = threading.Event()
    blocked = asyncio.create_task(service.segment("m", png(200), RAW))
    assert await asyncio.to_thread(control.entered.wait, WAIT_S)
    return blocked


def queue_depth(service: SegmentationService) -> float | None:
    return service.metrics.registry.get_sample_value("maskserve_queue_depth", {"model": "m"})


def test_concurrent_requests_share_batches_and_get_their_own_answers(tmp_path: Path) -> None:
    control = write_fake_model(tmp_path, "m")

    async def body() -> None:
        async with serving(tmp_path, max_batch_size=8, max_queue_delay_ms=600_000) as service:
            assert service.ready
            values = list(range(10, 26))
            results = await asyncio.wait_for(
                asyncio.gather(*(service.segment("m", png(v, width=30 + v), RAW) for v in values)),
                WAIT_S,
            )
        for value, result in zip(values, results, strict=True):
            assert result.width == 30 + value and result.height == 16
            (detection,) = result.detections
            assert detection.class_id == value % 3
            assert detection.score == pytest.approx(value / 255.0)
            assert set(result.timings) == {"queue", "inference", "postprocess", "total"}
        assert sorted(len(b) for b in control.batches) == [8, 8]
        assert control.seen() == set(values)

    asyncio.run(body())


def test_options_apply_per_request_after_the_shared_pass(tmp_path: Path) -> None:
    write_fake_model(tmp_path, "m")

    async def body() -> None:
        async with serving(tmp_path) as service:
            kept = await service.segment("m", png(120), SegmentOptions(score_threshold=0.1))
            dropped = await service.segment("m", png(120), SegmentOptions(score_threshold=0.9))
            other = await service.segment("m", png(120), SegmentOptions(classes=frozenset({1})))
            with pytest.raises(InvalidOptionError, match=r"valid ids are 0\.\.2"):
                await service.segment("m", png(1), SegmentOptions(classes=frozenset({7})))
        assert len(kept.detections) == 1 and kept.detections[0].mask is not None
        mask = kept.detections[0].mask
        assert isinstance(mask, Rle) and (mask.height, mask.width) == (16, 24)
        assert dropped.detections == () and other.detections == ()

    asyncio.run(body())


def test_failed_batch_fails_only_its_requests(tmp_path: Path, caplog) -> None:
    control = write_fake_model(tmp_path, "m")

    async def body() -> None:
        async with serving(tmp_path, max_batch_size=1) as service:
            control.fail_next = RuntimeError("boom")
            with pytest.raises(InferenceError, match="RuntimeError: boom"):
                await service.segment("m", png(1), RAW)
            control.fail_next = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate")
            with pytest.raises(InferenceError, match="CUDA out of memory"):
                await service.segment("m", png(2), RAW)
            control.wrong_count = True
            with pytest.raises(InferenceError, match="returned 0 results for a batch of 1"):
                await service.segment("m", png(3), RAW)
            control.wrong_count = False
            result = await service.segment("m", png(4), RAW)
            assert result.detections[0].score == pytest.approx(4 / 255)
            assert service.ready

    with caplog.at_level(logging.ERROR, logger="maskserve.workers"):
        asyncio.run(body())
    assert "RuntimeError: boom" in caplog.text


def test_request_whose_deadline_passes_in_the_queue_is_not_run(tmp_path: Path) -> None:
    control = write_fake_model(tmp_path, "m")

    async def body() -> None:
        async with serving(tmp_path, max_batch_size=1) as service:
            blocked = await hold_worker(service, control)
            try:
                with pytest.raises(DeadlineExceededError):
                    await service.segment("m", png(7), RAW, deadline=time.monotonic() + 0.05)
                with pytest.raises(DeadlineExceededError, match="on arrival"):
                    await service.segment("m", png(8), RAW, deadline=time.monotonic() - 1)
            finally:
                control.gate.set()
            await asyncio.wait_for(blocked, WAIT_S)
            control.gate = None
            await service.segment("m", png(9), RAW)
        assert control.seen() == {200, 9}

    asyncio.run(body())


def test_cancelled_request_is_not_run(tmp_path: Path) -> None:
    control = write_fake_model(tmp_path, "m")

    async def body() -> None:
        async with serving(tmp_path, max_batch_size=1) as service:
            blocked = await hold_worker(service, control)
            try:
                waiter = asyncio.create_task(service.segment("m", png(7), RAW))
                await asyncio.wait_for(until(lambda: queue_depth(service) == 1), WAIT_S)
                waiter.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await waiter
                assert queue_depth(service) == 0
            finally:
                control.gate.set()
            await asyncio.wait_for(blocked, WAIT_S)
            control.gate = None
            await service.segment("m", png(9), RAW)
            assert service.metrics.registry.get_sample_value(
                "maskserve_requests_total",
                {"model": "m", "protocol": "rest", "status": "cancelled"},
            )
        assert control.seen() == {200, 9}

    asyncio.run(body())


def test_bad_model_folders_are_reported_and_the_others_serve(tmp_path: Path, caplog) -> None:
    write_fake_model(tmp_path, "good")
    write_fake_model(tmp_path, "broken_ckpt").load_error = ValueError("checkpoint shape mismatch")
    write_fake_model(tmp_path, "bad_batching", "[batching]\nmax_batch_size = 0\n")
    (tmp_path / "bad_toml").mkdir()
    (tmp_path / "bad_toml" / "model.toml").write_text("family = ")
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "model.toml").write_text('family = "fake"\n[fake]\nkey = "x"\n')

    async def body() -> None:
        async with serving(tmp_path) as service:
            assert [m.name for m in service.list_models()] == ["good"]
            assert service.ready
            expected = {
                "broken_ckpt": "checkpoint shape mismatch",
                "bad_batching": "max_batch_size: must be >= 1",
                "bad_toml": "invalid TOML",
                "no_weights": "weights.safetensors does not exist",
                "absent": "unknown model 'absent'; available: good",
            }
            for name, reason in expected.items():
                with pytest.raises(ModelNotFoundError, match=reason):
                    await service.segment(name, png(1), RAW)
                with pytest.raises(ModelNotFoundError, match=reason):
                    service.get_model(name)
            assert (await service.segment("good", png(5), RAW)).detections

    with caplog.at_level(logging.ERROR):
        asyncio.run(body())
    for name in ("broken_ckpt", "bad_batching", "bad_toml", "no_weights"):
        assert f"model {name!r} failed to load" in caplog.text


def test_per_model_overrides_and_model_config(tmp_path: Path) -> None:
    extra = "score_threshold = 0.25\ninstances = 2\n[batching]\nmax_batch_size = 3\n"
    write_fake_model(tmp_path, "m", extra)

    async def body() -> None:
        async with serving(tmp_path, max_batch_size=8, max_queue_size=5) as service:
            config = service.model_config("m")
            assert service.get_model("m").score_threshold == 0.25
            dark = await service.segment("m", png(10), SegmentOptions(mask_format="none"))
        assert config["batching"] == {
            "max_batch_size": 3,
            "max_queue_delay_ms": 5.0,
            "max_queue_size": 5,
            "adaptive": False,
            "chosen_batch_size": 3,
            "cost_ms_per_image": {},
        }
        assert config["instances_per_device"] == 2 and config["devices"] == ["cpu"]
        assert dark.detections == ()  # 10 / 255 is below the model's threshold

    asyncio.run(body())


def test_invalid_image_is_reported(tmp_path: Path) -> None:
    write_fake_model(tmp_path, "m")

    async def body() -> None:
        async with serving(tmp_path) as service:
            with pytest.raises(InvalidImageError):
                await service.segment("m", b"not an image", RAW)

    asyncio.run(body())


def test_drain_refuses_new_requests_and_finishes_in_flight(tmp_path: Path) -> None:
    control = write_fake_model(tmp_path, "m")

    async def body() -> None:
        async with serving(tmp_path, max_batch_size=1) as service:
            blocked = await hold_worker(service, control)
            draining = asyncio.create_task(service.drain(grace_s=WAIT_S))
            await asyncio.wait_for(until(lambda: not service.ready), WAIT_S)
            assert not draining.done()
            with pytest.raises(ModelNotReadyError, match="draining"):
                await service.segment("m", png(3), RAW)
            control.gate.set()
            result = await asyncio.wait_for(blocked, WAIT_S)
            await asyncio.wait_for(draining, WAIT_S)
        assert result.detections[0].score == pytest.approx(200 / 255)

    asyncio.run(body())


def test_not_ready_until_started(tmp_path: Path) -> None:
    write_fake_model(tmp_path, "m")

    async def body() -> None:
        service = SegmentationService(
            Settings(model_repository=tmp_path, devices=["cpu"]), Metrics(gpu=False)
        )
        assert not service.ready and service.list_models() == []
        with pytest.raises(ModelNotReadyError, match="starting"):
            await service.segment("m", png(1), RAW)
        await service.start()
        assert service.ready and service.get_model("m").family == "fake"
        await service.stop()
        assert not service.ready

    asyncio.run(body())


def test_decoded_pixels_take_the_same_path_as_encoded_images(tmp_path: Path) -> None:
    write_fake_model(tmp_path, "m")
    pixels = np.full((16, 40, 3), 150, dtype=np.uint8)

    async def body() -> None:
        async with serving(tmp_path, max_pixels=1000) as service:
            from_bytes = await service.segment("m", png(150, width=40), SegmentOptions())
            from_pixels = await service.segment("m", pixels, SegmentOptions())
            assert dataclasses.replace(from_pixels, timings={}) == dataclasses.replace(
                from_bytes, timings={}
            )
            with pytest.raises(InvalidImageError, match="uint8 array"):
                await service.segment("m", pixels.astype(np.float32), SegmentOptions())
            with pytest.raises(InvalidImageError, match="3 channels"):
                await service.segment("m", np.zeros((4, 4, 4), np.uint8), SegmentOptions())
            with pytest.raises(ImageTooLargeError, match="limit is 1000 pixels"):
                await service.segment("m", np.zeros((40, 40, 3), np.uint8), SegmentOptions())

    asyncio.run(body())


def test_a_request_refused_for_a_full_queue_is_refused_before_it_is_decoded(
    tmp_path: Path,
) -> None:
    control = write_fake_model(tmp_path, "m")

    async def body() -> None:
        async with serving(tmp_path, max_batch_size=1, max_queue_size=1) as service:
            blocked = await hold_worker(service, control)
            queued = asyncio.create_task(service.segment("m", png(5), RAW))
            try:
                await asyncio.wait_for(until(lambda: queue_depth(service) == 1), WAIT_S)
                # undecodable: a decode before admission would answer InvalidImageError
                with pytest.raises(OverloadedError, match="max_queue_size 1"):
                    await service.segment("m", b"not an image", RAW)
            finally:
                control.gate.set()
            await asyncio.wait_for(asyncio.gather(blocked, queued), WAIT_S)

    asyncio.run(body())
