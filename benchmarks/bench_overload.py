"""Overload: open-loop Poisson traffic at a multiple of the measured capacity, over REST.

Usage::

    .venv/bin/python benchmarks/bench_overload.py [--model yolact_shapes] [--factor 10]
        [--overload-s 20] [--wait-batches 0,4] [--capacity-s 8] [--half-load-s 10]

For each ``--wait-batches`` value (``max_queue_wait_batches``: the admitted wait in batch
times; 0 = off, the queue bounded only by its count, ``max_queue_size`` 64) a fresh
``maskserve serve`` subprocess on 127.0.0.1:

1. capacity: closed loops (concurrency 8) for ``--capacity-s``: completed requests/s;
2. half load: Poisson arrivals at 0.5 × capacity for ``--half-load-s``: the reference p99;
3. overload: Poisson arrivals at ``--factor`` × capacity for ``--overload-s``, open loop
   (a request is sent at its arrival time whatever is still outstanding);
4. recovery: one request at a time after the overload stops, until one is answered within
   1.5 × the unloaded p50 (the seconds from the end of the overload to that answer).

Reported: shed rate (503/429 answers), p50/p99 of admitted (200) and of refused requests,
any other outcome (should be none), the Retry-After values the refusals carried, and the
issue's targets: p99 admitted ≤ 3 × half-load p99, recovery ≤ 2 s. One asyncio thread
sends pre-encoded images through aiohttp with no connection limit on either side
(``--max-connections`` 0), so the queue, not the connection limit, is what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import random
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import numpy as np
from PIL import Image
from serving_harness import ServerProcess

from maskserve.models.synthetic.generator import generate_sample

CONCURRENCY = 8
RECOVERY_FACTOR = 1.5
RECOVERY_LIMIT_S = 30.0


@dataclass
class Outcomes:
    """Every request of one phase: (status or error name, latency seconds, Retry-After)."""

    records: list[tuple[str, float, str | None]] = field(default_factory=list)

    def latencies(self, *statuses: str) -> list[float]:
        return [s for status, s, _ in self.records if status in statuses]

    def count(self, *statuses: str) -> int:
        return sum(1 for status, _, _ in self.records if status in statuses)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def make_images(count: int) -> list[bytes]:
    rng = np.random.default_rng(7)
    images = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(generate_sample(rng, 240, 320, max_objects=5).image).save(buffer, "PNG")
        images.append(buffer.getvalue())
    return images


async def send(
    http: aiohttp.ClientSession, path: str, image: bytes
) -> tuple[str, float, str | None]:
    began = time.perf_counter()
    try:
        async with http.post(path, data=image, headers={"content-type": "image/png"}) as reply:
            await reply.read()
            status, retry = str(reply.status), reply.headers.get("retry-after")
    except aiohttp.ClientError as exc:
        status, retry = type(exc).__name__, None
    return status, time.perf_counter() - began, retry


async def closed_loop(
    http: aiohttp.ClientSession, path: str, images: list[bytes], s: float
) -> float:
    """Completed requests per second with CONCURRENCY loops sending back to back."""
    end = time.perf_counter() + s
    statuses: list[str] = []

    async def loop(offset: int) -> None:
        number = offset
        while time.perf_counter() < end:
            statuses.append((await send(http, path, images[number % len(images)]))[0])
            number += CONCURRENCY

    began = time.perf_counter()
    await asyncio.gather(*(loop(i) for i in range(CONCURRENCY)))
    done = statuses.count("200")
    if not done:
        raise RuntimeError(f"no request succeeded at capacity: {sorted(set(statuses))}")
    return done / (time.perf_counter() - began)


async def arrivals(
    http: aiohttp.ClientSession, path: str, images: list[bytes], rate: float, s: float
) -> list[asyncio.Task[tuple[str, float, str | None]]]:
    """Poisson arrivals at ``rate``/s for ``s`` seconds; the requests, still outstanding."""
    rng = random.Random(11)
    tasks = []
    start = time.perf_counter()
    arrival = 0.0
    number = 0
    while arrival < s:
        delay = start + arrival - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(send(http, path, images[number % len(images)])))
        number += 1
        arrival += rng.expovariate(rate)
    return tasks


async def open_loop(
    http: aiohttp.ClientSession, path: str, images: list[bytes], rate: float, s: float
) -> Outcomes:
    """Poisson arrivals at ``rate``/s for ``s`` seconds, and every answer."""
    tasks = await arrivals(http, path, images, rate, s)
    return Outcomes(list(await asyncio.gather(*tasks)))


async def recovery(http: aiohttp.ClientSession, path: str, image: bytes, target: float) -> float:
    """Seconds from now (the last overload arrival; its requests may still be queued) until
    a lone request is answered 200 within ``target`` seconds."""
    began = time.perf_counter()
    while time.perf_counter() - began < RECOVERY_LIMIT_S:
        status, latency, _ = await send(http, path, image)
        if status == "200" and latency <= target:
            return time.perf_counter() - began
    return float("nan")


async def measure(args: argparse.Namespace, batches: float, log_dir: Path) -> dict[str, object]:
    flags = {
        "models": args.model,
        "devices": "cpu",
        "max-queue-wait-s": 0,
        "max-queue-wait-batches": batches,
        "max-connections": 0,
        "log-level": "warning",
    }
    images = make_images(8)
    path = f"/v1/models/{args.model}/segment"
    with ServerProcess(flags, log_dir / f"overload_batches{batches}.log") as server:
        connector = aiohttp.TCPConnector(limit=0)
        timeout = aiohttp.ClientTimeout(total=120)
        async with aiohttp.ClientSession(server.url, connector=connector, timeout=timeout) as http:
            for image in images:  # warm-up
                await send(http, path, image)
            lone = [(await send(http, path, images[0]))[1] for _ in range(10)]
            capacity = await closed_loop(http, path, images, args.capacity_s)
            half = await open_loop(http, path, images, 0.5 * capacity, args.half_load_s)
            sent = await arrivals(http, path, images, args.factor * capacity, args.overload_s)
            back = await recovery(http, path, images[0], RECOVERY_FACTOR * statistics.median(lone))
            over = Outcomes(list(await asyncio.gather(*sent)))
    return {"wait": batches, "capacity": capacity, "lone_p50": statistics.median(lone),
            "half": half, "over": over, "recovery": back}  # fmt: skip


def report(result: dict[str, object], factor: float) -> str:
    half, over = result["half"], result["over"]
    assert isinstance(half, Outcomes) and isinstance(over, Outcomes)
    ok, refused = over.latencies("200"), over.latencies("503", "429")
    other = len(over.records) - len(ok) - len(refused)
    retry = sorted(int(r) for status, _, r in over.records if status in ("503", "429") and r)
    half_p99 = pct(half.latencies("200"), 0.99)
    wait = result["wait"]
    return (
        f"max_queue_wait_batches={wait or 'off'}: capacity {result['capacity']:.1f} req/s, "
        f"lone p50 {1000 * result['lone_p50']:.0f} ms, half-load p99 {1000 * half_p99:.0f} ms "
        f"({half.count('200')}/{len(half.records)} ok)\n"
        f"  {factor:g}x: {len(over.records)} sent, shed {len(refused) / len(over.records):.1%}, "
        f"admitted p50/p99 {1000 * pct(ok, 0.5):.0f}/{1000 * pct(ok, 0.99):.0f} ms, "
        f"refused p50/p99 {1000 * pct(refused, 0.5):.0f}/{1000 * pct(refused, 0.99):.0f} ms, "
        f"other outcomes {other}, Retry-After s min/median/max "
        f"{retry[0] if retry else '-'}/{pct(retry, 0.5) if retry else '-'}/"
        f"{retry[-1] if retry else '-'}\n"
        f"  p99 admitted / half-load p99 = {pct(ok, 0.99) / half_p99:.2f} (target <= 3), "
        f"recovery {result['recovery']:.2f} s (target <= 2)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--model", default="yolact_shapes")
    add("--factor", type=float, default=10.0)
    add("--overload-s", type=float, default=20.0)
    add("--capacity-s", type=float, default=8.0)
    add("--half-load-s", type=float, default=10.0)
    add("--wait-batches", default="0,4", help="max_queue_wait_batches values (0: off)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as logs:
        for wait in (float(w) for w in args.wait_batches.split(",")):
            print(report(asyncio.run(measure(args, wait, Path(logs))), args.factor), flush=True)


if __name__ == "__main__":
    main()
