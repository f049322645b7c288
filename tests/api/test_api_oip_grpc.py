"""The Open Inference Protocol over gRPC, driven by the real tritonclient (sync, aio, stream)."""

from __future__ import annotations

import asyncio
import queue
from typing import Any

import httpx
import numpy as np
import pytest
import tritonclient.grpc as triton
import tritonclient.grpc.aio as triton_aio
from api_harness import MODEL, RunningServer
from tritonclient.utils import InferenceServerException

OUTPUT_NAMES = ("num_detections", "boxes", "scores", "classes", "labels", "masks", "image_size")


def client(server: RunningServer) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(server.grpc_target)


def image_input(*images: bytes) -> triton.InferInput:
    tensor = triton.InferInput("IMAGE", [len(images)], "BYTES")
    tensor.set_data_from_numpy(np.array(images, dtype=np.object_))
    return tensor


def native(server: RunningServer, image: bytes) -> list[dict[str, Any]]:
    answer = httpx.post(
        f"{server.http_url}/v1/models/{MODEL}/segment",
        content=image,
        headers={"content-type": "image/jpeg"},
        timeout=60,
    )
    return answer.json()["detections"]


def assert_same(result: Any, expected: list[dict[str, Any]], row: int = 0) -> None:
    assert result.as_numpy("num_detections")[row] == len(expected) >= 1
    np.testing.assert_allclose(
        result.as_numpy("scores")[row], [d["score"] for d in expected], rtol=1e-5
    )
    np.testing.assert_allclose(
        result.as_numpy("boxes")[row], [d["box"] for d in expected], atol=1e-3
    )
    assert result.as_numpy("classes")[row].tolist() == [d["class_id"] for d in expected]
    masks = [m.decode() for m in result.as_numpy("masks")[row]]
    assert masks == [d["mask"]["counts"] for d in expected]


def test_health_metadata_config_and_index(server: RunningServer) -> None:
    c = client(server)
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready(MODEL)
    assert not c.is_model_ready("nope")
    meta = c.get_server_metadata(as_json=True)
    assert {"binary_tensor_data", "statistics", "model_configuration"} <= set(meta["extensions"])
    model = c.get_model_metadata(MODEL, as_json=True)
    assert model["inputs"] == [{"name": "IMAGE", "datatype": "BYTES", "shape": ["-1"]}]
    config = c.get_model_config(MODEL, as_json=True)["config"]
    assert int(config["max_batch_size"]) >= 1
    assert config["input"][0]["data_type"] == "TYPE_STRING"
    assert "max_queue_delay_microseconds" in config["dynamic_batching"]
    assert {o["name"] for o in config["output"]} == set(OUTPUT_NAMES)
    assert config["instance_group"][0]["kind"] == "KIND_CPU"
    index = c.get_model_repository_index(as_json=True)["models"]
    assert {"name": MODEL, "version": "1", "state": "READY"}.items() <= next(
        m for m in index if m["name"] == MODEL
    ).items()
    with pytest.raises(InferenceServerException, match="nope"):
        c.get_model_metadata("nope")
    with pytest.raises(InferenceServerException, match="nope"):
        c.get_model_config("nope")


def test_infer_matches_the_native_api(
    server: RunningServer, jpeg: bytes, pixels: np.ndarray
) -> None:
    expected = native(server, jpeg)
    outputs = [triton.InferRequestedOutput(name) for name in OUTPUT_NAMES]
    result = client(server).infer(MODEL, [image_input(jpeg, jpeg)], outputs=outputs)
    assert result.as_numpy("boxes").shape == (2, len(expected), 4)
    assert_same(result, expected, 0)
    assert_same(result, expected, 1)
    assert result.as_numpy("image_size").tolist()[0] == list(pixels.shape[:2])


def test_statistics_count_what_was_served(server: RunningServer, jpeg: bytes) -> None:
    c = client(server)

    def stats() -> dict[str, Any]:
        return c.get_inference_statistics(MODEL, as_json=True)["model_stats"][0]

    before = stats()
    c.infer(MODEL, [image_input(jpeg)])
    after = stats()
    inference = after["inference_stats"]
    assert int(after["inference_count"]) == int(before.get("inference_count", 0)) + 1
    old = before.get("inference_stats", {}).get("success", {})
    assert int(inference["success"]["count"]) == int(old.get("count", 0)) + 1
    for stage in ("queue", "compute_input", "compute_infer", "compute_output"):
        assert int(inference[stage]["ns"]) > 0, stage
    assert int(after["execution_count"]) >= 1 and after["batch_stats"]
    assert int(after["last_inference"]) > 0
    http = httpx.get(f"{server.http_url}/v2/models/{MODEL}/stats", timeout=30).json()
    assert http["model_stats"][0]["inference_count"] >= int(after["inference_count"])
    every = httpx.get(f"{server.http_url}/v2/models/stats", timeout=30).json()
    assert MODEL in {m["name"] for m in every["model_stats"]}


def test_aio_client_and_typed_contents(server: RunningServer, jpeg: bytes) -> None:
    expected = native(server, jpeg)

    async def run() -> Any:
        async with triton_aio.InferenceServerClient(server.grpc_target) as c:
            assert await c.is_model_ready(MODEL)
            return await c.infer(MODEL, [image_input(jpeg)])

    assert_same(asyncio.run(run()), expected)
    # typed contents (bytes_contents), as clients that do not use raw tensors send them
    import grpc

    from maskserve.api.gen import oip_service_pb2 as pb
    from maskserve.api.gen import oip_service_pb2_grpc as pb_grpc

    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        request = pb.ModelInferRequest(model_name=MODEL)
        tensor = request.inputs.add(name="IMAGE", datatype="BYTES", shape=[1])
        tensor.contents.bytes_contents.append(jpeg)
        answer = stub.ModelInfer(request, timeout=60)
    assert not answer.raw_output_contents
    scores = next(o for o in answer.outputs if o.name == "scores")
    np.testing.assert_allclose(
        scores.contents.fp32_contents, [d["score"] for d in expected], rtol=1e-5
    )


def test_stream_answers_in_order_with_errors_inside(server: RunningServer, jpeg: bytes) -> None:
    answers: queue.Queue[tuple[Any, Any]] = queue.Queue()
    c = client(server)
    c.start_stream(callback=lambda result, error: answers.put((result, error)))
    try:
        for i, image in enumerate([jpeg, b"junk", jpeg, jpeg]):
            c.async_stream_infer(MODEL, [image_input(image)], request_id=str(i))
        got = [answers.get(timeout=120) for _ in range(4)]
    finally:
        c.stop_stream()
    assert got[1][0] is None and "image" in str(got[1][1])
    ids = [result.get_response().id for result, error in got if error is None]
    assert ids == ["0", "2", "3"]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda r: setattr(r.inputs[0], "datatype", "FP32"), "BYTES"),
        (lambda r: r.inputs[0].shape.__setitem__(0, 3), "shape"),
        (lambda r: r.raw_input_contents.__setitem__(0, b"\xff\xff\x00\x00ab"), "truncated"),
        (lambda r: setattr(r.inputs[0], "name", "PIXELS"), "IMAGE"),
        (lambda r: r.outputs.add(name="nope"), "unknown output"),
        (lambda r: r.inputs[0].contents.bytes_contents.append(b"x"), "mixed"),
    ],
    ids=["datatype", "shape", "framing", "input-name", "output-name", "raw-and-typed"],
)
def test_malformed_requests_are_invalid_argument(
    server: RunningServer, png: bytes, mutate: Any, message: str
) -> None:
    import grpc

    from maskserve.api.gen import oip_service_pb2 as pb
    from maskserve.api.gen import oip_service_pb2_grpc as pb_grpc

    request = pb.ModelInferRequest(model_name=MODEL)
    request.inputs.add(name="IMAGE", datatype="BYTES", shape=[1])
    request.raw_input_contents.append(len(png).to_bytes(4, "little") + png)
    mutate(request)
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.ModelInfer(request, timeout=60)
        assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert message in caught.value.details()
        assert stub.ServerReady(pb.ServerReadyRequest(), timeout=30).ready
