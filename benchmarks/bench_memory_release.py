"""Resident memory of a ``maskserve serve`` process around large requests (issue 12).

Usage::

    .venv/bin/python benchmarks/bench_memory_release.py [--release-after 0,16777216]

After a warm-up, 8 concurrent 63 MiB bodies of junk (each answered 400), then 10
concurrent 6000×6000 JPEGs (200, or 503 past ``max_pixels_in_flight``); for each, the
server's ``VmRSS`` (median of 5 reads) before and after every answer is in, and, when
``release_memory_after_bytes`` is on, after the trim the server reports in
``maskserve_memory_trims_total``; last, how far one 60 MiB multipart upload lifts the
peak RSS (``VmHWM`` reset just before). One fresh server per setting, the shipped
``yolact_shapes``. ``tests/api/test_api_memory.py`` runs the same scenario and requires
RSS within 10 % of its value before.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

import aiohttp
import httpx
import numpy as np
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from serving_harness import ServerProcess
from soak import rss_bytes

MIB = 1 << 20
JUNK_BODIES = 8
JUNK_SIZE = 63 * MIB
BIG_IMAGES = 10
BIG_SIDE = 6000
TOLERANCE = 0.10
TRIM_WAIT_S = 60.0
MULTIPART_SIZE = 60 * MIB


def big_jpeg() -> bytes:
    """A 6000×6000 JPEG of a few MB: smooth gradients with mild noise."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, BIG_SIDE, dtype=np.float32)
    image = np.stack([np.add.outer(ramp, ramp) / 2, np.add.outer(ramp, -ramp) % 256], -1)
    image = np.concatenate([image, image[..., :1]], -1)
    image += rng.normal(0, 6, image.shape).astype(np.float32)
    buffer = io.BytesIO()
    Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


async def post_all(url: str, bodies: list[bytes], content_type: str) -> list[int]:
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:

        async def one(body: bytes) -> int:
            headers = {"content-type": content_type}
            async with session.post(url, data=body, headers=headers) as response:
                await response.read()
                return response.status

        return list(await asyncio.gather(*(one(b) for b in bodies)))


def trims(base_url: str) -> float:
    text = httpx.get(base_url + "/metrics", timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name == "maskserve_memory_trims":
            return sum(s.value for s in family.samples if s.name.endswith("_total"))
    raise AssertionError("no maskserve_memory_trims_total in /metrics")


def wait_for_trims(base_url: str, at_least: float) -> None:
    """The trim runs on the server after the last answer is sent: wait for its count."""
    give_up = time.monotonic() + TRIM_WAIT_S
    while trims(base_url) < at_least:
        assert time.monotonic() < give_up, f"no trim reported within {TRIM_WAIT_S:.0f} s"
        time.sleep(0.1)


def steady_rss(pid: int) -> int:
    return int(statistics.median(rss_bytes(pid) for _ in range(5)))


def peak_rss_bytes(pid: int) -> int:
    """``VmHWM``: the process's peak resident memory since start or :func:`reset_peak`."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmHWM for process {pid}")


def reset_peak(pid: int) -> None:
    """Set ``VmHWM`` to the current RSS (Linux: ``5`` into ``clear_refs``)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def multipart_peak(url: str, pid: int) -> int:
    """How far one 60 MiB multipart upload (junk in an ``image`` part) lifts peak RSS."""
    body = os.urandom(MULTIPART_SIZE)
    reset_peak(pid)
    before = rss_bytes(pid)
    answer = httpx.post(url, files={"image": ("x.png", body, "image/png")}, timeout=300)
    assert answer.status_code == 400, answer.text
    return peak_rss_bytes(pid) - before


def run_large_requests(
    repository: Path, model: str, log: Path, release_after: int
) -> tuple[list[tuple[int, int]], int]:
    """RSS (baseline, after) around the junk bodies, then around the big JPEGs; and the
    peak RSS a 60 MiB multipart upload adds."""
    flags = {
        "model-repository": repository,
        "models": model,
        "devices": "cpu",
        "request-timeout-s": 300,
        "release-memory-after-bytes": release_after,
    }
    url_path = f"/v1/models/{model}/segment"
    jpeg = big_jpeg()
    junk = [os.urandom(JUNK_SIZE)] * JUNK_BODIES
    figures = []
    with ServerProcess(flags, log) as server:
        small = Image.new("RGB", (320, 240), (90, 120, 200))
        buffer = io.BytesIO()
        small.save(buffer, "PNG")
        warm = asyncio.run(post_all(server.url + url_path, [buffer.getvalue()] * 4, "image/png"))
        assert warm == [200] * 4
        for bodies, content_type in ((junk, "image/png"), ([jpeg] * BIG_IMAGES, "image/jpeg")):
            done = trims(server.url) if release_after else 0.0
            before = steady_rss(server.pid)
            statuses = asyncio.run(post_all(server.url + url_path, bodies, content_type))
            assert set(statuses) <= {200, 400, 503}, statuses
            if release_after:
                wait_for_trims(server.url, done + 1)
            figures.append((before, steady_rss(server.pid)))
        peak = multipart_peak(server.url + url_path, server.pid)
    return figures, peak


def main() -> None:
    from maskserve.models.registry import ZOO_DIR

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--release-after", default=f"0,{16 * MIB}")
    parser.add_argument("--model", default="yolact_shapes")
    args = parser.parse_args()
    print("| release_memory_after_bytes | requests | RSS before MiB | RSS after MiB | change |")
    print("|---|---|---|---|---|")
    for setting in (int(v) for v in args.release_after.split(",")):
        with tempfile.TemporaryDirectory(prefix="bench_memory_") as temp:
            log = Path(temp) / "serve.log"
            figures, peak = run_large_requests(ZOO_DIR, args.model, log, setting)
        kinds = ("8 x 63 MiB junk", "10 x 6000² JPEG")
        for kind, (before, after) in zip(kinds, figures, strict=True):
            print(
                f"| {setting} | {kind} | {before / MIB:.0f} | {after / MIB:.0f} "
                f"| {(after - before) / before:+.1%} |",
                flush=True,
            )
        print(f"| {setting} | one 60 MiB multipart upload | peak +{peak / MIB:.0f} MiB | | |")


if __name__ == "__main__":
    main()
