"""gRPC against a real server: Segment, models, errors, health and reflection."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import httpx
import numpy as np
import pytest
from api_harness import GRPC_MESSAGE_LIMIT, MODEL, RunningServer
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from pycocotools import mask as coco_mask

from maskserve.api.gen import segment_pb2 as pb
from maskserve.api.gen import segment_pb2_grpc as pb_grpc

SERVICE = "maskserve.v1.Segmentation"


@pytest.fixture(scope="module")
def channel(server: RunningServer) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(
        server.grpc_target, options=[("grpc.max_send_message_length", 8 * GRPC_MESSAGE_LIMIT)]
    ) as channel:
        yield channel


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> pb_grpc.SegmentationStub:
    return pb_grpc.SegmentationStub(channel)


def decode(mask: pb.Mask) -> np.ndarray:
    size = [mask.height, mask.width]
    if mask.WhichOneof("counts") == "runs":
        rle = coco_mask.frPyObjects({"size": size, "counts": list(mask.runs.counts)}, *size)
    else:
        rle = {"size": size, "counts": mask.compressed}
    return coco_mask.decode(rle)


def rest_masks(server: RunningServer, png: bytes) -> list[np.ndarray]:
    response = httpx.post(
        f"{server.http_url}/v1/models/{MODEL}/segment",
        content=png,
        headers={"content-type": "image/png"},
        params={"score_threshold": 0.0},
        timeout=60,
    )
    return [coco_mask.decode(d["mask"]) for d in response.json()["detections"]]


@pytest.mark.parametrize("mask_format", [pb.RLE_COMPRESSED, pb.RLE_RAW_RUNS])
def test_segment_masks_equal_the_rest_masks(
    server: RunningServer, stub: pb_grpc.SegmentationStub, png: bytes, mask_format: int
) -> None:
    options = pb.SegmentOptions(score_threshold=0.0, mask_format=mask_format)
    reply = stub.Segment(pb.SegmentRequest(model=MODEL, image=png, options=options), timeout=60)
    assert (reply.model, reply.width, reply.height) == (MODEL, 320, 240)
    assert reply.timings.total_seconds > 0
    got = [decode(d.mask) for d in reply.detections]
    expected = rest_masks(server, png)
    assert len(got) == len(expected)
    for mine, theirs in zip(got, expected, strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_mask_format_none_and_options(stub: pb_grpc.SegmentationStub, png: bytes) -> None:
    options = pb.SegmentOptions(score_threshold=0.0, max_detections=2, mask_format=pb.NONE)
    reply = stub.Segment(pb.SegmentRequest(model=MODEL, image=png, options=options), timeout=60)
    assert len(reply.detections) <= 2
    assert all(not d.HasField("mask") for d in reply.detections)


def test_models(stub: pb_grpc.SegmentationStub) -> None:
    models = stub.ListModels(pb.ListModelsRequest(), timeout=10).models
    assert [m.name for m in models] == [MODEL]
    info = stub.GetModel(pb.GetModelRequest(name=MODEL), timeout=10)
    assert info == models[0]
    assert info.family == "yolact" and info.input_size == 320 and len(info.class_names) == 8
    assert list(info.devices) == ["cpu"] and info.batching.max_batch_size >= 1
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetModel(pb.GetModelRequest(name="nope"), timeout=10)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND


def _error(stub: pb_grpc.SegmentationStub, request: pb.SegmentRequest, timeout: float = 60):
    with pytest.raises(grpc.RpcError) as caught:
        stub.Segment(request, timeout=timeout)
    return caught.value


@pytest.mark.parametrize(
    ("image", "model", "options", "status", "reason"),
    [
        (b"", MODEL, None, grpc.StatusCode.INVALID_ARGUMENT, "invalid_image"),
        (b"not an image", MODEL, None, grpc.StatusCode.INVALID_ARGUMENT, "invalid_image"),
        (None, "no_such_model", None, grpc.StatusCode.NOT_FOUND, "model_not_found"),
        (None, MODEL, {"score_threshold": 2.0}, grpc.StatusCode.INVALID_ARGUMENT, "invalid_option"),
        (None, MODEL, {"classes": [42]}, grpc.StatusCode.INVALID_ARGUMENT, "invalid_option"),
    ],
)
def test_errors_map_to_status_codes(
    stub: pb_grpc.SegmentationStub, png: bytes, image, model, options, status, reason
) -> None:
    request = pb.SegmentRequest(
        model=model,
        image=png if image is None else image,
        options=pb.SegmentOptions(**(options or {})),
    )
    error = _error(stub, request)
    assert error.code() is status
    assert error.details()
    assert ("maskserve-error-code", reason) in tuple(error.trailing_metadata() or ())
    reply = stub.Segment(pb.SegmentRequest(model=MODEL, image=png), timeout=60)
    assert reply.width == 320  # still serving


def test_message_over_the_limit_is_refused(stub: pb_grpc.SegmentationStub) -> None:
    request = pb.SegmentRequest(model=MODEL, image=b"\0" * (2 * GRPC_MESSAGE_LIMIT))
    assert _error(stub, request).code() is grpc.StatusCode.RESOURCE_EXHAUSTED


def test_expired_deadline(stub: pb_grpc.SegmentationStub, png: bytes) -> None:
    error = _error(stub, pb.SegmentRequest(model=MODEL, image=png), timeout=0.000_001)
    assert error.code() is grpc.StatusCode.DEADLINE_EXCEEDED


def test_health_reports_serving(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for name in ("", SERVICE):
        reply = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_and_describes_the_service(channel: grpc.Channel) -> None:
    reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE),
    ]
    listed, described = list(reflect.ServerReflectionInfo(iter(requests), timeout=10))
    names = {s.name for s in listed.list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health"} <= names
    files = described.file_descriptor_response.file_descriptor_proto
    assert files and b"maskserve/v1/segment.proto" in files[0]
