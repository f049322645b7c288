"""REST against a real server: answers, options, model endpoints, probes, metrics, docs."""

from __future__ import annotations

import httpx
import numpy as np
from api_harness import MODEL, RunningServer, metric_samples, needs_shipped_model
from pycocotools import mask as coco_mask

SEGMENT = f"/v1/models/{MODEL}/segment"


def post(server: RunningServer, body: bytes, content_type: str = "image/png", **params):
    return httpx.post(
        server.http_url + SEGMENT,
        content=body,
        headers={"content-type": content_type},
        params=params,
        timeout=60,
    )


def test_segment_png_answers_the_documented_shape(server: RunningServer, png: bytes) -> None:
    response = post(server, png)
    assert response.status_code == 200, response.text
    data = response.json()
    assert data["model"] == MODEL
    assert data["image"] == {"width": 320, "height": 240}
    assert set(data["timings"]) == {"queue", "inference", "postprocess", "total"}
    for det in data["detections"]:
        assert set(det) >= {"class_id", "label", "score", "box", "mask"}
        assert det["mask"]["size"] == [240, 320]
        assert coco_mask.decode(det["mask"]).shape == (240, 320)


def test_jpeg_and_multipart_bodies_are_accepted(
    server: RunningServer, png: bytes, jpeg: bytes
) -> None:
    assert post(server, jpeg, "image/jpeg").status_code == 200
    raw = post(server, png).json()
    response = httpx.post(
        server.http_url + SEGMENT, files={"image": ("scene.png", png, "image/png")}, timeout=60
    )
    assert response.status_code == 200, response.text
    assert response.json()["detections"] == raw["detections"]


@needs_shipped_model
def test_query_options_filter_the_detections(server: RunningServer, png: bytes) -> None:
    everything = post(server, png, score_threshold=0.0).json()["detections"]
    assert len(everything) >= 2, "the shipped model should find several shapes"
    wanted = everything[0]["class_id"]
    only = post(server, png, score_threshold=0.0, classes=str(wanted)).json()["detections"]
    assert only and all(d["class_id"] == wanted for d in only)
    top = post(server, png, score_threshold=0.0, max_detections=1).json()["detections"]
    assert top == everything[:1]
    cut = everything[1]["score"]
    above = post(server, png, score_threshold=cut).json()["detections"]
    assert [d["score"] for d in above] == [d["score"] for d in everything if d["score"] > cut]
    bare = post(server, png, score_threshold=0.0, mask_format="none").json()["detections"]
    assert [d["mask"] for d in bare] == [None] * len(everything)
    assert [d["box"] for d in bare] == [d["box"] for d in everything]


def test_models_endpoints(server: RunningServer) -> None:
    listed = httpx.get(server.http_url + "/v1/models").json()["models"]
    assert [m["name"] for m in listed] == [MODEL]
    one = httpx.get(server.http_url + f"/v1/models/{MODEL}").json()
    assert one == listed[0]
    assert one["input_size"] == 320 and len(one["class_names"]) == 8
    assert one["batching"]["max_batch_size"] >= 1
    missing = httpx.get(server.http_url + "/v1/models/nope")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "model_not_found"


def test_probes_and_docs(server: RunningServer) -> None:
    assert httpx.get(server.http_url + "/healthz").json() == {"status": "alive"}
    assert httpx.get(server.http_url + "/readyz").status_code == 200
    docs = httpx.get(server.http_url + "/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = httpx.get(server.http_url + "/openapi.json").json()
    body = spec["paths"][SEGMENT.replace(MODEL, "{model}")]["post"]["requestBody"]
    assert {"image/jpeg", "image/png", "image/webp", "multipart/form-data"} <= set(body["content"])


def test_metrics_parse_and_count_requests(server: RunningServer, png: bytes) -> None:
    response = httpx.get(server.http_url + "/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    key = (
        "maskserve_requests_total",
        (("model", MODEL), ("protocol", "rest"), ("status", "ok")),
    )
    before = metric_samples(server.http_url).get(key, 0.0)
    assert post(server, png).status_code == 200
    after = metric_samples(server.http_url)
    assert after[key] == before + 1
    assert any(name == "maskserve_request_duration_seconds_count" for name, _ in after)


def test_unknown_route_uses_the_error_body(server: RunningServer) -> None:
    response = httpx.get(server.http_url + "/v2/nothing")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_rle_counts_decode_to_binary_masks(server: RunningServer, png: bytes) -> None:
    for det in post(server, png, score_threshold=0.0).json()["detections"]:
        mask = coco_mask.decode(det["mask"])
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1}
