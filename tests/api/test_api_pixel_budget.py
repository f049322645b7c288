"""The budget of decoded pixels in flight refuses, with a fast 503, what would pass it."""

from __future__ import annotations

import concurrent.futures
import time
from pathlib import Path

import httpx
import numpy as np
from api_harness import MODEL, encode, metric_samples, running_server, server_settings

BUDGET = 100_000
WAIT_S = 60.0  # safety net for the polling below, never reached when the server works


def post(url: str, image: bytes) -> httpx.Response:
    return httpx.post(
        f"{url}/v1/models/{MODEL}/segment",
        content=image,
        headers={"content-type": "image/png"},
        timeout=120,
    )


def test_images_past_the_budget_are_refused_until_it_frees(
    repository: Path, pixels: np.ndarray
) -> None:
    big = encode(pixels, "PNG")  # 240 × 320 = 76 800 pixels
    small = encode(pixels[:100, :100], "PNG")  # 10 000: fits beside it
    settings = server_settings(
        repository,
        adaptive_batching=False,
        max_batch_size=2,
        max_queue_delay_ms=60_000.0,  # the first request waits for company
        request_timeout_s=120.0,
        max_pixels_in_flight=BUDGET,
    )
    inflight = ("maskserve_inflight_requests", (("model", MODEL),))
    with running_server(settings) as server, concurrent.futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(post, server.http_url, big)
        give_up = time.monotonic() + WAIT_S
        while metric_samples(server.http_url).get(inflight, 0.0) < 1:
            assert time.monotonic() < give_up and not first.done(), "never queued"
        refused = post(server.http_url, big)
        assert refused.status_code == 503, refused.text
        assert "max_pixels_in_flight" in refused.json()["error"]["message"]
        assert post(server.http_url, small).status_code == 200  # fits; closes the batch
        assert first.result(timeout=WAIT_S).status_code == 200
        again = pool.submit(post, server.http_url, big)  # the budget was given back ...
        while metric_samples(server.http_url).get(inflight, 0.0) < 1:
            assert time.monotonic() < give_up and not again.done(), "never admitted"
        assert post(server.http_url, small).status_code == 200  # ... (company for its batch)
        assert again.result(timeout=WAIT_S).status_code == 200
