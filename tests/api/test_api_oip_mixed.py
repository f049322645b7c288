"""Open Inference Protocol and ``/v1`` requests meet in one batcher: batched together, and
every client gets its own answer."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pycocotools.mask as mask_utils
import tritonclient.grpc as triton
from api_harness import (
    MODEL,
    RunningServer,
    encode,
    metric_samples,
    running_server,
    server_settings,
)

PER_PROTOCOL = 4
BATCH = 2 * PER_PROTOCOL


def rest(server: RunningServer, image: bytes) -> list[dict[str, Any]]:
    answer = httpx.post(
        f"{server.http_url}/v1/models/{MODEL}/segment",
        content=image,
        headers={"content-type": "image/png"},
        timeout=120,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()["detections"]


def oip(server: RunningServer, image: bytes) -> list[dict[str, Any]]:
    tensor = triton.InferInput("IMAGE", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([image], dtype=np.object_))
    with triton.InferenceServerClient(server.grpc_target) as client:
        result = client.infer(MODEL, [tensor], client_timeout=120)
    count = int(result.as_numpy("num_detections")[0])
    return [
        {
            "score": float(result.as_numpy("scores")[0][i]),
            "class_id": int(result.as_numpy("classes")[0][i]),
            "mask": result.as_numpy("masks")[0][i].decode(),
        }
        for i in range(count)
    ]


def assert_same(got: list[dict[str, Any]], expected: list[dict[str, Any]], size: Any) -> None:
    assert [d["class_id"] for d in got] == [d["class_id"] for d in expected] and got
    np.testing.assert_allclose([d["score"] for d in got], [d["score"] for d in expected], atol=1e-4)
    for a, b in zip(got, expected, strict=True):
        masks = [
            {"size": list(size), "counts": (m if isinstance(m, str) else m["counts"]).encode()}
            for m in (a["mask"], b["mask"])
        ]
        assert mask_utils.iou([masks[0]], [masks[1]], [False])[0][0] >= 0.99


def test_oip_and_native_requests_share_batches(
    server: RunningServer, repository: Path, pixels: np.ndarray
) -> None:
    from maskserve.models.synthetic.generator import generate_sample

    other = generate_sample(np.random.default_rng(7), *pixels.shape[:2], max_objects=5).image
    images = {"oip": encode(pixels, "PNG"), "rest": encode(other, "PNG")}
    expected = {"oip": rest(server, images["oip"]), "rest": rest(server, images["rest"])}
    # one batch closes only when all BATCH requests are queued (the delay is far away)
    settings = server_settings(
        repository,
        adaptive_batching=False,
        max_batch_size=BATCH,
        max_queue_delay_ms=60_000.0,
        request_timeout_s=120.0,
    )
    with running_server(settings) as mixed:
        before = metric_samples(mixed.http_url)
        calls = {"oip": oip, "rest": rest}
        with concurrent.futures.ThreadPoolExecutor(BATCH) as pool:
            futures = [
                (kind, pool.submit(calls[kind], mixed, images[kind]))
                for kind in ("oip", "rest")
                for _ in range(PER_PROTOCOL)
            ]
            answers = [(kind, future.result(timeout=180)) for kind, future in futures]
        after = metric_samples(mixed.http_url)
    for kind, got in answers:
        assert_same(got, expected[kind], pixels.shape[:2])
    count = ("maskserve_batch_size_count", (("model", MODEL),))
    total = ("maskserve_batch_size_sum", (("model", MODEL),))
    assert after[count] - before.get(count, 0.0) == 1  # one batch ...
    assert after[total] - before.get(total, 0.0) == BATCH  # ... of every request
