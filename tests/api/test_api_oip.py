"""The Open Inference Protocol over HTTP, driven by the real tritonclient."""

from __future__ import annotations

import gzip
import json
import struct

import httpx
import numpy as np
import pycocotools.mask as mask_utils
import pytest
import tritonclient.http as triton
from api_harness import MODEL, RunningServer, metric_samples
from tritonclient.utils import InferenceServerException


def client(server: RunningServer) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(f"127.0.0.1:{server.server.http_port}")


def image_input(*images: bytes) -> triton.InferInput:
    tensor = triton.InferInput("IMAGE", [len(images)], "BYTES")
    tensor.set_data_from_numpy(np.array(images, dtype=np.object_), binary_data=True)
    return tensor


def test_health_metadata_and_config(server: RunningServer) -> None:
    c = client(server)
    assert c.is_server_live() and c.is_server_ready() and c.is_model_ready(MODEL)
    assert not c.is_model_ready("nope")
    meta = c.get_server_metadata()
    assert "binary_tensor_data" in meta["extensions"]
    model = c.get_model_metadata(MODEL)
    assert model["inputs"] == [{"name": "IMAGE", "datatype": "BYTES", "shape": [-1]}]
    assert {o["name"] for o in model["outputs"]} >= {"boxes", "scores", "masks", "num_detections"}
    config = c.get_model_config(MODEL)
    assert config["max_batch_size"] >= 1 and config["input"][0]["data_type"] == "TYPE_STRING"
    with pytest.raises(InferenceServerException, match="nope"):
        c.get_model_metadata("nope")


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_matches_the_native_api(server: RunningServer, jpeg: bytes, binary: bool) -> None:
    native = httpx.post(
        f"{server.http_url}/v1/models/{MODEL}/segment",
        content=jpeg,
        headers={"content-type": "image/jpeg"},
        timeout=60,
    ).json()["detections"]
    outputs = [
        triton.InferRequestedOutput(name, binary_data=binary)
        for name in (
            "num_detections",
            "boxes",
            "scores",
            "classes",
            "labels",
            "masks",
            "image_size",
        )
    ]
    result = client(server).infer(MODEL, [image_input(jpeg, jpeg)], outputs=outputs)
    counts = result.as_numpy("num_detections")
    assert counts.tolist() == [len(native), len(native)] and len(native) >= 1
    boxes, scores = result.as_numpy("boxes"), result.as_numpy("scores")
    assert boxes.shape == (2, len(native), 4)
    np.testing.assert_allclose(scores[0], [d["score"] for d in native], rtol=1e-5)
    np.testing.assert_allclose(boxes[1], [d["box"] for d in native], atol=1e-3)
    assert result.as_numpy("classes")[0].tolist() == [d["class_id"] for d in native]
    masks = result.as_numpy("masks")[0]
    height, width = result.as_numpy("image_size")[0].tolist()
    for counts_string, detection in zip(masks, native, strict=True):
        text = counts_string.decode() if isinstance(counts_string, bytes) else counts_string
        assert text == detection["mask"]["counts"]
        decoded = mask_utils.decode({"size": [height, width], "counts": text.encode()})
        assert decoded.shape == (height, width)


def test_parameters_filter_like_the_native_options(server: RunningServer, png: bytes) -> None:
    result = client(server).infer(
        MODEL, [image_input(png)], parameters={"max_detections": 1, "score_threshold": 0.05}
    )
    assert result.as_numpy("num_detections").tolist() == [1]


def test_raw_mode_and_gzip_bodies(server: RunningServer, png: bytes) -> None:
    url = f"{server.http_url}/v2/models/{MODEL}/infer"
    raw = httpx.post(url, content=png, headers={"Inference-Header-Content-Length": "0"}, timeout=60)
    assert raw.status_code == 200
    header_length = int(raw.headers["inference-header-content-length"])
    header = json.loads(raw.content[:header_length])
    assert {o["name"] for o in header["outputs"]} >= {"masks", "boxes"}
    element = struct.pack("<I", len(png)) + png
    request = {
        "inputs": [
            {
                "name": "IMAGE",
                "datatype": "BYTES",
                "shape": [1],
                "parameters": {"binary_data_size": len(element)},
            }
        ],
        "outputs": [{"name": "num_detections"}],
    }
    text = json.dumps(request).encode()
    zipped = httpx.post(
        url,
        content=gzip.compress(text + element),
        headers={"Inference-Header-Content-Length": str(len(text)), "Content-Encoding": "gzip"},
        timeout=60,
    )
    assert zipped.status_code == 200, zipped.text
    assert zipped.json()["outputs"][0]["data"][0] >= 1


def test_errors_are_the_protocols_and_counted(server: RunningServer, png: bytes) -> None:
    url = f"{server.http_url}/v2/models/{MODEL}/infer"
    before = metric_samples(server.http_url)
    bad = httpx.post(url, content=b"{not json", headers={"Inference-Header-Content-Length": "9"})
    assert bad.status_code == 400 and isinstance(bad.json()["error"], str)
    junk = httpx.post(url, content=b"junk", headers={"Inference-Header-Content-Length": "0"})
    assert junk.status_code == 400 and "image" in junk.json()["error"]
    missing = httpx.post(
        f"{server.http_url}/v2/models/nope/infer",
        content=png,
        headers={"Inference-Header-Content-Length": "0"},
    )
    assert missing.status_code == 404
    after = metric_samples(server.http_url)
    refused = (
        "maskserve_requests_total",
        (("model", MODEL), ("protocol", "oip"), ("status", "invalid_option")),
    )
    assert after[refused] == before.get(refused, 0.0) + 1
    with pytest.raises(InferenceServerException):
        client(server).infer(MODEL, [image_input(png)], parameters={"timeout": -5})
