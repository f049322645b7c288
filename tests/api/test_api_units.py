"""The pure parts of the protocol layer: error table, proto options, ``serve`` flags."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import grpc
import pytest

from maskserve import errors
from maskserve.api.errors import PayloadTooLargeError, status_of
from maskserve.api.gen import segment_pb2 as pb
from maskserve.api.grpc_codec import options_from_proto
from maskserve.api.http_app import error_response
from maskserve.cli import build_parser
from maskserve.serve import settings_from_args

CODE = grpc.StatusCode


@pytest.mark.parametrize(
    ("error", "http", "code"),
    [
        (errors.InvalidImageError("x"), 400, CODE.INVALID_ARGUMENT),
        (errors.ImageTooLargeError("x"), 413, CODE.INVALID_ARGUMENT),
        (PayloadTooLargeError("x"), 413, CODE.INVALID_ARGUMENT),
        (errors.InvalidOptionError("x"), 400, CODE.INVALID_ARGUMENT),
        (errors.UnsupportedMediaTypeError("x"), 415, CODE.INVALID_ARGUMENT),
        (errors.ModelNotFoundError("x"), 404, CODE.NOT_FOUND),
        (errors.ModelNotReadyError("x"), 503, CODE.UNAVAILABLE),
        (errors.OverloadedError("x"), 503, CODE.UNAVAILABLE),
        (errors.DeadlineExceededError("x"), 504, CODE.DEADLINE_EXCEEDED),
        (errors.InferenceError("x"), 500, CODE.INTERNAL),
        (RuntimeError("x"), 500, CODE.INTERNAL),
    ],
)
def test_error_table(error: Exception, http: int, code: grpc.StatusCode) -> None:
    status = status_of(error)
    assert (status.http, status.grpc) == (http, code)


def test_overload_can_be_resource_exhausted() -> None:
    status = status_of(errors.OverloadedError("full"), "resource_exhausted")
    assert (status.http, status.grpc) == (429, CODE.RESOURCE_EXHAUSTED)
    response = error_response(errors.OverloadedError("full"), "resource_exhausted")
    assert response.status_code == 429 and response.headers["retry-after"] == "1"


def test_internal_errors_name_their_cause() -> None:
    response = error_response(errors.InferenceError("CUDA out of memory"), "unavailable")
    assert response.status_code == 500
    assert b"CUDA out of memory" in response.body and b'"inference_failed"' in response.body


def test_proto_options() -> None:
    options = options_from_proto(
        pb.SegmentOptions(score_threshold=0.5, max_detections=3, classes=[1, 2])
    )
    assert options.score_threshold == pytest.approx(0.5)
    assert (options.max_detections, options.classes) == (3, frozenset({1, 2}))
    assert options_from_proto(pb.SegmentOptions()).score_threshold is None  # unset ≠ 0
    assert options_from_proto(pb.SegmentOptions(score_threshold=0.0)).score_threshold == 0.0
    assert options_from_proto(pb.SegmentOptions(mask_format=pb.NONE)).mask_format == "none"
    with pytest.raises(errors.InvalidOptionError):
        options_from_proto(pb.SegmentOptions(mask_format=7))


def test_serve_flags_override_config_and_defaults(tmp_path: Path) -> None:
    config = tmp_path / "maskserve.toml"
    config.write_text('max_queue_size = 7\nhttp_port = 9001\nlog_level = "error"\n')
    argv = [
        "--log-level", "debug", "serve", "--config", str(config),
        "--models", "a,b", "--devices", "cpu", "--http-port", "9100", "--host", "127.0.0.1",
        "--request-timeout", "2.5", "--max-batch-size", "4", "--log-format", "json",
    ]  # fmt: skip
    settings = settings_from_args(build_parser().parse_args(argv))
    assert settings.models == ["a", "b"] and settings.devices == ["cpu"]
    assert (settings.http_port, settings.http_host) == (9100, "127.0.0.1")
    assert (settings.request_timeout_s, settings.max_batch_size) == (2.5, 4)
    assert settings.max_queue_size == 7  # from the file, no flag given
    assert settings.log_level == "error"  # maskserve's own --log-level does not leak in
    assert settings.log_format == "json" and settings.grpc_port == 50051


def test_serve_without_arguments_serves_the_default_model(monkeypatch) -> None:
    for key in [k for k in os.environ if k.startswith("MASKSERVE_")]:
        monkeypatch.delenv(key)
    settings = settings_from_args(build_parser().parse_args(["serve"]))
    assert settings.models is None and settings.model_repository.name == "zoo"
    assert (settings.http_port, settings.grpc_port) == (8000, 50051)


def test_a_server_without_any_loadable_model_exits_1(tmp_path: Path) -> None:
    from api_harness import server_settings

    from maskserve.app import MaskserveServer

    async def main() -> int:
        server = MaskserveServer(server_settings(tmp_path, models=["missing"]))
        await server.start()
        return await server.wait()

    assert asyncio.run(main()) == 1
