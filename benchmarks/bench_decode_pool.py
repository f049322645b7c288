"""Do threads suffice for decoding off the event loop, or are processes needed?

Decodes N copies of a 1920×1080 JPEG (``maskserve.imageio.decode_image``, as the service
does) concurrently through ``loop.run_in_executor`` with: no executor (inline on the loop,
the baseline), thread pools of several sizes, and a process pool.  For each it reports
throughput and how late a 1 ms ticker on the event loop ran meanwhile (the latency every
other request on the loop would see). First it compares one decode by ``decode_image``
(libjpeg-turbo through torchvision) with Pillow alone, at 640×480 and 1920×1080.

    python benchmarks/bench_decode_pool.py [--images 48] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import statistics
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from maskserve.imageio import decode_image

TICK_S = 0.001


def make_jpeg(width: int = 1920, height: int = 1080, quality: int = 90) -> bytes:
    """A photo-like frame: gradients, noise and filled shapes (decode cost tracks entropy)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / width * 255, y / height * 255, (x + y) / (width + height) * 255], -1)
    pixels = np.clip(base + rng.normal(0, 18, base.shape), 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    draw = ImageDraw.Draw(image)
    for _ in range(60):
        x0, y0 = int(rng.integers(0, width - 200)), int(rng.integers(0, height - 200))
        size = int(rng.integers(30, 200))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse((x0, y0, x0 + size, y0 + size), fill=colour)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def decode_shape(data: bytes) -> tuple[int, ...]:
    """Decode in the worker and return only the shape (what a process pool *could* do)."""
    return decode_image(data).shape


@dataclass
class Run:
    label: str
    seconds: float
    lag_max_ms: float
    lag_p99_ms: float


async def _ticker(stop: asyncio.Event, lags: list[float]) -> None:
    while not stop.is_set():
        planned = time.perf_counter() + TICK_S
        await asyncio.sleep(TICK_S)
        lags.append(max(0.0, time.perf_counter() - planned))


async def _measure(
    label: str, executor: Executor | None, fn: Callable[[bytes], object], data: bytes, n: int
) -> Run:
    loop = asyncio.get_running_loop()
    stop, lags = asyncio.Event(), []
    ticker = asyncio.create_task(_ticker(stop, lags))
    await asyncio.sleep(TICK_S * 5)
    began = time.perf_counter()
    if executor is None:
        for _ in range(n):
            fn(data)
            await asyncio.sleep(0)
    else:
        await asyncio.gather(*(loop.run_in_executor(executor, fn, data) for _ in range(n)))
    seconds = time.perf_counter() - began
    stop.set()
    await ticker
    ordered = sorted(lags) or [0.0]
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return Run(label, seconds, ordered[-1] * 1000, p99 * 1000)


async def _suite(data: bytes, n: int, cores: int) -> list[Run]:
    runs = [await _measure("inline on the loop", None, decode_image, data, n)]
    for size in sorted({1, 2, cores, 2 * cores}):
        with ThreadPoolExecutor(size) as pool:
            list(pool.map(decode_image, [data] * size))  # start the threads
            runs.append(await _measure(f"threads x{size}", pool, decode_image, data, n))
    with ProcessPoolExecutor(cores) as pool:
        list(pool.map(decode_image, [data] * cores))  # start the processes
        runs.append(await _measure(f"processes x{cores}", pool, decode_image, data, n))
        runs.append(await _measure(f"processes x{cores} (shape only)", pool, decode_shape, data, n))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    compare_decoders()
    data = make_jpeg()
    single = min(_time(decode_image, data) for _ in range(5))
    size_kib = len(data) / 1024
    print(f"JPEG 1920x1080: {size_kib:.0f} KiB; one decode {single * 1000:.1f} ms; {cores} cores")
    results: dict[str, list[Run]] = {}
    for _ in range(args.repeats):
        for run in asyncio.run(_suite(data, args.images, cores or 1)):
            results.setdefault(run.label, []).append(run)
    print(f"{args.images} concurrent decodes, median of {args.repeats} runs")
    print(f"{'mode':<34} {'images/s':>9} {'loop lag p99 ms':>16} {'loop lag max ms':>16}")
    for label, runs in results.items():
        seconds = statistics.median(r.seconds for r in runs)
        p99 = statistics.median(r.lag_p99_ms for r in runs)
        worst = statistics.median(r.lag_max_ms for r in runs)
        print(f"{label:<34} {args.images / seconds:>9.1f} {p99:>16.1f} {worst:>16.1f}")


def pillow_decode(data: bytes) -> np.ndarray:
    """What ``decode_image`` did before its JPEG fast path: Pillow all the way."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data)))
    return np.asarray(image.convert("RGB"))


def compare_decoders(repeats: int = 15) -> None:
    """Median single-decode times, the two decoders alternating."""
    for width, height in ((640, 480), (1920, 1080)):
        data = make_jpeg(width, height)
        ours, pillow = [], []
        for _ in range(repeats):
            ours.append(_time(decode_image, data))
            pillow.append(_time(pillow_decode, data))
        a, b = statistics.median(ours), statistics.median(pillow)
        print(
            f"JPEG {width}x{height}: decode_image {a * 1e3:.2f} ms, Pillow alone "
            f"{b * 1e3:.2f} ms ({b / a:.2f}x)"
        )


def _time(fn: Callable[[bytes], object], data: bytes) -> float:
    began = time.perf_counter()
    fn(data)
    return time.perf_counter() - began


if __name__ == "__main__":
    main()
