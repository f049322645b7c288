"""Tensor models served over the Open Inference Protocol, through the real clients.

A running server on 127.0.0.1 with a batched tensor model (``family = "raw"``) and an
Ultralytics YOLO-seg export that says ``raw = true`` (so it is also ``yolo_raw``):
tritonclient's HTTP and gRPC clients read their metadata and config and infer; every answer
equals onnxruntime's own run of the file; concurrent requests share one batch; malformed
tensors are clear 400s / INVALID_ARGUMENT, counted, and the server keeps serving.
"""

from __future__ import annotations

import concurrent.futures
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tiny_graphs import write_tensor_model
from tritonclient.utils import InferenceServerException

FIXTURE = Path(__file__).parents[1] / "yoloseg" / "fixtures" / "yolov8-seg.onnx"
BATCH = 4


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tensor_repository")
    write_tensor_model(root / "tiny", batching=f"\n[batching]\nmax_batch_size = {BATCH}\n")
    # one batch closes only when BATCH requests are queued: the delay is far away
    write_tensor_model(
        root / "tiny_gathering",
        batching=f"\n[batching]\nmax_batch_size = {BATCH}\nmax_queue_delay_ms = 60000\n",
    )
    (root / "yolo").mkdir()
    shutil.copyfile(FIXTURE, root / "yolo" / "model.onnx")
    (root / "yolo" / "model.toml").write_text(
        'family = "yoloseg"\nweights = "model.onnx"\nraw = true\n\n[yoloseg]\nconf = 0.05\n'
    )
    return root


@pytest.fixture(scope="module")
def server(repository: Path, api_harness: ModuleType) -> Iterator[Any]:
    settings = api_harness.server_settings(
        repository,
        models=["tiny", "tiny_gathering", "yolo"],
        adaptive_batching=False,
        request_timeout_s=120.0,
    )
    with api_harness.running_server(settings) as running:
        yield running


def rows(count: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.normal(size=(count, 4)).astype(np.float32),
        "offset": rng.normal(size=(count, 1)).astype(np.float32),
    }


def reference(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path))
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def http_infer(server: Any, feeds: dict[str, np.ndarray], binary: bool = True) -> Any:
    inputs = []
    for name, array in feeds.items():
        tensor = triton_http.InferInput(name, list(array.shape), "FP32")
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    outputs = [triton_http.InferRequestedOutput(n, binary_data=binary) for n in ("y", "positive")]
    with triton_http.InferenceServerClient(server.http_url.removeprefix("http://")) as client:
        return client.infer("tiny", inputs, outputs=outputs)


def grpc_infer(server: Any, model: str, feeds: dict[str, np.ndarray]) -> Any:
    inputs = []
    for name, array in feeds.items():
        tensor = triton_grpc.InferInput(name, list(array.shape), "FP32")
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    with triton_grpc.InferenceServerClient(server.grpc_target) as client:
        return client.infer(model, inputs, client_timeout=120)


def test_metadata_and_config_are_the_graphs(server: Any) -> None:
    with triton_http.InferenceServerClient(server.http_url.removeprefix("http://")) as client:
        meta = client.get_model_metadata("tiny")
        tiny = client.get_model_config("tiny")
        yolo = client.get_model_config("yolo_raw")
        index = {m["name"]: m["state"] for m in client.get_model_repository_index()}
    assert set(index.values()) == {"READY"}
    assert sorted(index) == ["tiny", "tiny_gathering", "yolo", "yolo_raw"]
    assert meta["inputs"] == [
        {"name": "x", "datatype": "FP32", "shape": [-1, 4]},
        {"name": "offset", "datatype": "FP32", "shape": [-1, 1]},
    ]
    assert [(o["name"], o["datatype"]) for o in meta["outputs"]] == [
        ("y", "FP32"),
        ("positive", "BOOL"),
    ]
    assert tiny["max_batch_size"] == BATCH and tiny["input"][0]["dims"] == [4]
    assert yolo["max_batch_size"] == 0 and yolo["input"][0]["dims"] == [1, 3, 320, 320]
    metadata = eval(yolo["parameters"]["metadata"]["string_value"], {})  # as Ultralytics does
    assert metadata["names"] == {0: "shape"} and metadata["imgsz"] == [320, 320]
    with triton_grpc.InferenceServerClient(server.grpc_target) as client:
        config = client.get_model_config("yolo_raw", as_json=True)["config"]
    assert [o["name"] for o in config["output"]] == ["output0", "output1"]
    assert config["input"][0]["data_type"] == "TYPE_FP32"
    assert "metadata" in config["parameters"]


@pytest.mark.parametrize("binary", [True, False])
def test_http_answers_equal_onnxruntime(server: Any, repository: Path, binary: bool) -> None:
    feeds = rows(3, 1)
    result = http_infer(server, feeds, binary)
    expected = reference(repository / "tiny" / "model.onnx", feeds)
    np.testing.assert_array_equal(result.as_numpy("y"), expected["y"])
    np.testing.assert_array_equal(result.as_numpy("positive"), expected["positive"])


def test_grpc_answers_equal_onnxruntime_for_the_raw_twin(server: Any, repository: Path) -> None:
    image = np.random.default_rng(3).random((1, 3, 320, 320), dtype=np.float32)
    result = grpc_infer(server, "yolo_raw", {"images": image})
    expected = reference(repository / "yolo" / "model.onnx", {"images": image})
    for name in ("output0", "output1"):
        np.testing.assert_array_equal(result.as_numpy(name), expected[name])


def test_concurrent_requests_share_one_batch(
    server: Any, repository: Path, api_harness: ModuleType
) -> None:
    model = "tiny_gathering"
    requests = [rows(count, seed) for seed, count in enumerate([1, 2, 3, 1], start=10)]
    before = api_harness.metric_samples(server.http_url)
    with concurrent.futures.ThreadPoolExecutor(BATCH) as pool:
        futures = [pool.submit(grpc_infer, server, model, feeds) for feeds in requests]
        answers = [future.result(timeout=120) for future in futures]
    after = api_harness.metric_samples(server.http_url)
    for feeds, answer in zip(requests, answers, strict=True):
        expected = reference(repository / model / "model.onnx", feeds)
        np.testing.assert_array_equal(answer.as_numpy("y"), expected["y"])
    count = ("maskserve_batch_size_count", (("model", model),))
    total = ("maskserve_batch_size_sum", (("model", model),))
    assert after[count] - before.get(count, 0.0) == 1
    assert after[total] - before.get(total, 0.0) == BATCH
    ok = ("maskserve_requests_total", (("model", model), ("protocol", "oip"), ("status", "ok")))
    assert after[ok] - before.get(ok, 0.0) == BATCH


def _header(inputs: list[dict[str, Any]], outputs: list[str] | None = None) -> dict[str, Any]:
    header: dict[str, Any] = {"inputs": inputs}
    if outputs is not None:
        header["outputs"] = [{"name": name} for name in outputs]
    return header


X = {"name": "x", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}
OFFSET = {"name": "offset", "datatype": "FP32", "shape": [1, 1], "data": [0.5]}
MALFORMED = {
    "wrong datatype": _header([{**X, "datatype": "FP64"}, OFFSET]),
    "wrong shape": _header([{**X, "shape": [1, 3], "data": [1, 2, 3]}, OFFSET]),
    "data disagrees with shape": _header([{**X, "shape": [2, 4]}, OFFSET]),
    "unknown input": _header([X, OFFSET, {**OFFSET, "name": "extra"}]),
    "missing input": _header([X]),
    "unknown output": _header([X, OFFSET], ["nope"]),
    "an image for a tensor model": _header(
        [{"name": "IMAGE", "datatype": "BYTES", "shape": [1], "data": ["abc"]}]
    ),
    "not a number": _header([{**X, "data": ["a", "b", "c", "d"]}, OFFSET]),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_tensors_are_400_and_counted(
    server: Any, api_harness: ModuleType, case: str
) -> None:
    key = ("maskserve_requests_total", (("model", "tiny"), ("protocol", "oip")))
    before = _count_errors(api_harness.metric_samples(server.http_url), key)
    answer = httpx.post(
        f"{server.http_url}/v2/models/tiny/infer", content=json.dumps(MALFORMED[case]), timeout=60
    )
    assert answer.status_code == 400, answer.text
    assert isinstance(answer.json()["error"], str) and answer.json()["error"]
    assert _count_errors(api_harness.metric_samples(server.http_url), key) == before + 1
    ready = httpx.get(f"{server.http_url}/v2/models/tiny/ready", timeout=60)
    assert ready.status_code == 200  # and the model still serves


def _count_errors(samples: dict, key: tuple) -> float:
    name, labels = key
    return sum(
        value
        for (sample, sample_labels), value in samples.items()
        if sample == name
        and set(labels) <= set(sample_labels)
        and ("status", "ok") not in sample_labels
    )


def test_binary_framing_errors_are_400(server: Any) -> None:
    header = json.dumps(
        _header(
            [
                {
                    "name": "x",
                    "datatype": "FP32",
                    "shape": [1, 4],
                    "parameters": {"binary_data_size": 64},
                },
                OFFSET,
            ]
        )
    ).encode()
    overrun = httpx.post(
        f"{server.http_url}/v2/models/tiny/infer",
        content=header + b"\0" * 16,
        headers={"Inference-Header-Content-Length": str(len(header))},
        timeout=60,
    )
    assert overrun.status_code == 400 and "overruns" in overrun.json()["error"]
    raw_mode = httpx.post(
        f"{server.http_url}/v2/models/tiny/infer",
        content=b"\0" * 16,
        headers={"Inference-Header-Content-Length": "0"},
        timeout=60,
    )
    assert raw_mode.status_code == 400 and "raw mode" in raw_mode.json()["error"]


def test_grpc_errors_are_invalid_argument(server: Any) -> None:
    with pytest.raises(InferenceServerException) as caught:
        grpc_infer(server, "tiny", {"x": np.zeros((1, 5), np.float32)})
    assert caught.value.status() == str(grpc.StatusCode.INVALID_ARGUMENT)


def test_an_image_sent_to_the_tensor_twin_is_refused(server: Any, api_harness: ModuleType) -> None:
    from maskserve.models.synthetic.generator import generate_sample

    png = api_harness.encode(generate_sample(np.random.default_rng(1), 96, 96).image, "PNG")
    answer = httpx.post(
        f"{server.http_url}/v1/models/yolo_raw/segment",
        content=png,
        headers={"content-type": "image/png"},
        timeout=60,
    )
    assert answer.status_code == 400 and "tensor model" in answer.json()["error"]["message"]
    fine = httpx.post(
        f"{server.http_url}/v1/models/yolo/segment",
        content=png,
        headers={"content-type": "image/png"},
        timeout=60,
    )
    assert fine.status_code == 200, fine.text
