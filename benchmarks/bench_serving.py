"""Served throughput and latency over REST and gRPC, beside the in-process ceiling.

Usage::

    .venv/bin/python benchmarks/bench_serving.py [--requests 160] [--warmup 16]
        [--protocols rest,grpc] [--concurrency 1,4,16] [--batching on,off]
        [--model yolact_shapes] [--device cpu] [--dtype float32]
        [--random-weights yolact_base]   # a temporary model folder with random weights
        [--server-env OMP_WAIT_POLICY=ACTIVE]   # environment of the server process only

First, in this process, the model's backend plus the server's own post-processing
(``select`` + ``build_result`` with RLE) on decoded pixels: latency at batch 1 and
throughput at batch ``--max-batch-size``.  Then, for batching on (``--max-batch-size``,
``--queue-delay-ms``) and off (batch size 1), a ``maskserve serve`` subprocess on free
127.0.0.1 ports, driven over each protocol at each concurrency by closed loops (one
asyncio thread, pre-encoded images): ``--warmup`` requests, then ``--requests`` measured
ones.  CPU columns are average cores used during the window by the server process, by
this process (the load generator), and by anything else on the machine. Last, against the
batching-on server, ``--paired-rounds`` rounds at concurrency 1 that time the in-process
pipeline (from decoded pixels, and from the encoded bytes) and one served request per
protocol back to back on the same image, then ``--throughput-rounds`` rounds that
alternate a block of in-process batches with a served window at the top concurrency
(``interleaved.py``): the per-round gaps and ratios are what the targets are judged on,
because the machine's speed drifts more between the phases than the gap itself.
``--retain-freed-memory`` applies to both sides alike.

Targets: served images/s at the highest concurrency with batching ≥ 0.9 × the in-process
batched images/s; served p50 at concurrency 1 within 5 ms of in-process batch-1 latency.

``--random-weights CONFIG`` writes a model folder for a registered YOLACT config (e.g.
``yolact_base``) with seeded random weights and ``conf_thresh`` 0, so that every image
yields the full ``max_num_detections`` and the mask stage is exercised (at the config's
0.05 random weights detect nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import signal
import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from inprocess import Ceiling, InProcess
from interleaved import Block, Rounds, interleave, throughput_report, throughput_rounds
from interleaved import report as latency_report
from PIL import Image
from serving_harness import Clients, Send, ServerProcess, Window, drive

from maskserve.models.registry import DEFAULT_MODEL, ZOO_DIR, ModelSpec
from maskserve.models.synthetic.generator import generate_sample
from maskserve.models.tomlwrite import dumps
from maskserve.models.yolact.checkpoint import save_safetensors
from maskserve.models.yolact.config import get_config
from maskserve.models.yolact.config_io import config_to_dict
from maskserve.models.yolact.network import Yolact
from maskserve.settings import DTYPES

EXAMPLE = ZOO_DIR / "yolact_shapes" / "example.png"
CONTENT_TYPES = {"jpeg": "image/jpeg", "png": "image/png"}
T = TypeVar("T")


def make_images(count: int, size: tuple[int, int], fmt: str, seed: int) -> list[tuple[bytes, str]]:
    """``count`` synthetic images (fixed seed) encoded once, plus the shipped example.png."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        buffer = io.BytesIO()
        Image.fromarray(generate_sample(rng, *size).image).save(buffer, format=fmt.upper())
        images.append((buffer.getvalue(), CONTENT_TYPES[fmt]))
    images.append((EXAMPLE.read_bytes(), "image/png"))
    return images


def write_random_model(config_name: str, repository: Path) -> str:
    """A model folder ``<repository>/<config_name>`` with seeded random weights."""
    torch.manual_seed(0)
    config = replace(get_config(config_name), conf_thresh=0.0)
    folder = repository / config_name
    folder.mkdir(parents=True)
    save_safetensors(Yolact(config), folder / "weights.safetensors")
    table = {
        "family": "yolact",
        "weights": "weights.safetensors",
        "description": f"{config_name} with random weights (bench_serving)",
        "yolact": config_to_dict(config),
    }
    (folder / "model.toml").write_text(dumps(table))
    return config_name


@dataclass
class Cell:
    protocol: str
    batching: str
    concurrency: int
    window: Window
    mean_batch: float

    @property
    def throughput(self) -> float:
        return len(self.window.latencies) / self.window.seconds

    def p(self, q: float) -> float:
        return float(np.percentile(self.window.latencies, q))


def server_flags(args: argparse.Namespace, repository: Path, batching: str) -> dict[str, object]:
    on = batching == "on"
    return {
        "model-repository": repository,
        "models": args.model,
        "devices": args.device,
        "dtype": args.dtype,
        "max-batch-size": args.max_batch_size if on else 1,
        "max-queue-delay-ms": args.queue_delay_ms if on else 0.0,
        "max-queue-size": max(64, 4 * max(args.concurrency)),
        "log-level": args.server_log_level,
        "retain-freed-memory": args.retain_freed_memory,
    }


async def measure_server(
    server: ServerProcess,
    args: argparse.Namespace,
    batching: str,
    images: list[tuple[bytes, str]],
    model: InProcess,
) -> tuple[list[Cell], Interleaved | None]:
    clients = Clients(server.http_port, server.grpc_port, max(args.concurrency))
    try:
        async with clients.http.get(f"/v1/models/{args.model}") as reply:
            config = await reply.json()
        print(f"  batching {batching}: server config {config['batching']}", flush=True)
        cells = []
        for protocol in args.protocols:
            for concurrency in args.concurrency:
                send = clients.sender(protocol, args.model, images)
                before = await clients.batch_totals(args.model)
                warmup = max(args.warmup, 2 * concurrency)
                window = await drive(
                    send, concurrency, warmup, args.requests, args.duration, server.pid
                )
                after = await clients.batch_totals(args.model)
                mean_batch = (after[0] - before[0]) / max(1.0, after[1] - before[1])
                cell = Cell(protocol, batching, concurrency, window, mean_batch)
                print(f"    {row(cell)}", flush=True)
                if window.first_error:
                    print(f"    first error: {window.first_error[:300]}")
                cells.append(cell)
        paired = None
        if batching == "on":
            paired = await measure_interleaved(clients, server, args, images, model)
        return cells, paired
    finally:
        await clients.close()


@dataclass
class Interleaved:
    latency: Rounds | None
    throughput: dict[str, list[float]] | None


async def measure_interleaved(
    clients: Clients,
    server: ServerProcess,
    args: argparse.Namespace,
    images: list[tuple[bytes, str]],
    model: InProcess,
) -> Interleaved:
    """Latency rounds at concurrency 1, then throughput rounds at the top concurrency."""
    senders = {p: clients.sender(p, args.model, images) for p in args.protocols}
    latency = None
    if args.paired_rounds > 0:
        print(f"  interleaved latency rounds at concurrency 1: {args.paired_rounds}", flush=True)
        local = {"in-process from bytes": model.from_bytes, "in-process": model.from_pixels}
        latency = await interleave(local, senders, args.paired_rounds)
    throughput = None
    if args.throughput_rounds > 0:
        concurrency = max(args.concurrency)
        print(f"  interleaved throughput rounds at concurrency {concurrency}", flush=True)

        def served(send: Send) -> Block:
            async def block() -> float:
                window = await drive(
                    send, concurrency, concurrency, 4 * concurrency, None, server.pid
                )
                return len(window.latencies) / window.seconds

            return block

        async def in_process() -> float:
            return model.batched_ips()

        blocks = {"in-process batched": in_process} | {
            f"{p} conc {concurrency}": served(send) for p, send in senders.items()
        }
        throughput = await throughput_rounds(blocks, args.throughput_rounds)
    return Interleaved(latency, throughput)


HEADER = (
    "| protocol | batching | conc | n | img/s | p50 ms | p99 ms | server total p50 ms "
    "| queue p50 ms | inference p50 ms | postprocess p50 ms | outside server p50 ms "
    "| mean batch | server cores | client cores | other cores | errors |"
)


def row(cell: Cell) -> str:
    w = cell.window

    def stage(name: str) -> str:
        values = [t[name] for t in w.timings if name in t]
        return f"{1e3 * statistics.median(values):.1f}" if values else "-"

    outside = "-"
    if w.errors == 0 and w.timings and all("total" in t for t in w.timings):
        gaps = [lat - t["total"] for lat, t in zip(w.latencies, w.timings, strict=True)]
        outside = f"{1e3 * statistics.median(gaps):.1f}"  # protocol + client, per request
    return (
        f"| {cell.protocol} | {cell.batching} | {cell.concurrency} | {len(w.latencies)} "
        f"| {cell.throughput:.1f} | {1e3 * cell.p(50):.1f} | {1e3 * cell.p(99):.1f} "
        f"| {stage('total')} | {stage('queue')} | {stage('inference')} "
        f"| {stage('postprocess')} | {outside} | {cell.mean_batch:.2f} "
        f"| {w.cores('server'):.2f} | {w.cores('client'):.2f} | {w.cores('other'):.2f} "
        f"| {w.errors} |"
    )


def report(
    model: InProcess,
    ceilings: list[Ceiling],
    cells: list[Cell],
    paired: Interleaved | None,
    args: argparse.Namespace,
) -> None:
    print(f"\n## maskserve serving benchmark: {args.model} on {args.device} ({args.dtype})\n")
    print(f"detections per image (in-process): {model.detections}")
    print(
        f"decode per image (median, not in the in-process figures): {1e3 * model.decode_s:.2f} ms"
    )
    print(
        "\n| in-process | batch 1 img/s | batch 1 p50 ms | batch 1 p99 ms "
        f"| batch {model.batch} img/s |\n|---|---|---|---|---|"
    )
    for when, c in zip(("before the servers", "after the servers"), ceilings, strict=False):
        print(
            f"| {when} | {1 / c.p50():.1f} | {1e3 * c.p50():.1f} "
            f"| {1e3 * np.percentile(c.latencies, 99):.1f} | {c.batched_ips:.1f} |"
        )
    print(f"\n{HEADER}\n|" + "---|" * (HEADER.count("|") - 1))
    for cell in cells:
        print(row(cell))
    best_ips = max(c.batched_ips for c in ceilings)
    best_p50 = min(c.p50() for c in ceilings)
    print(
        f"\nratios against the better in-process figure ({best_ips:.1f} img/s batched, "
        f"{1e3 * best_p50:.1f} ms p50 at batch 1):"
    )
    for cell in cells:
        if cell.concurrency == max(args.concurrency):
            print(
                f"- throughput {cell.protocol}, batching {cell.batching}, conc "
                f"{cell.concurrency}: {cell.throughput / best_ips:.2f}x (target >= 0.9)"
            )
    for cell in cells:
        if cell.concurrency == min(args.concurrency):
            print(
                f"- latency {cell.protocol}, batching {cell.batching}, conc {cell.concurrency}: "
                f"p50 {1e3 * (cell.p(50) - best_p50):+.1f} ms (target <= +5 ms)"
            )
    if paired is not None and paired.latency is not None:
        print("\nconcurrency 1, interleaved with in-process runs (interleaved.py):\n")
        baselines = ["in-process", "in-process from bytes"]
        print("\n".join(latency_report(paired.latency, baselines, args.protocols)))
    if paired is not None and paired.throughput is not None:
        print("\nthroughput, interleaved blocks (interleaved.py):\n")
        print("\n".join(throughput_report(paired.throughput, "in-process batched")))


def csv(kind: Callable[[str], T]) -> Callable[[str], list[T]]:
    """An argparse type for comma-separated values."""
    return lambda text: [kind(part.strip()) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--model", default=DEFAULT_MODEL)
    add("--model-repository", type=Path, default=ZOO_DIR)
    add("--random-weights", metavar="CONFIG", help="serve this YOLACT config, random weights")
    add("--device", default="cpu")
    add("--dtype", choices=sorted(DTYPES), default="float32")
    add("--protocols", type=csv(str), default=["rest", "grpc"])
    add("--concurrency", type=csv(int), default=[1, 4, 16])
    add("--batching", type=csv(str), default=["on", "off"], help="on, off or both")
    add("--max-batch-size", type=int, default=8)
    add("--queue-delay-ms", type=float, default=5.0)
    add("--requests", type=int, default=160, help="measured requests per cell")
    add("--warmup", type=int, default=16, help="requests before each window (>= 2 x conc)")
    add("--duration", type=float, help="also end each window after this many seconds")
    add("--reps", type=int, default=40, help="in-process batch-1 repetitions")
    add("--paired-rounds", type=int, default=60, help="interleaved conc-1 rounds (0: none)")
    add("--throughput-rounds", type=int, default=5, help="interleaved throughput rounds")
    add("--images", type=int, default=3, help="synthetic images besides example.png")
    add("--image-size", default="480x640", help="HxW of the synthetic images")
    add("--image-format", choices=sorted(CONTENT_TYPES), default="jpeg")
    add("--seed", type=int, default=0)
    add("--server-log-level", default="warning")
    add("--retain-freed-memory", choices=["true", "false"], default="true", help="both sides")
    add("--server-env", action="append", default=[], metavar="KEY=VALUE", help="repeatable")
    args = parser.parse_args(argv)
    if not set(args.protocols) <= {"rest", "grpc"} or not set(args.batching) <= {"on", "off"}:
        parser.error("--protocols takes rest,grpc and --batching on,off")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the server subprocess is stopped on the way out
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    height, width = (int(v) for v in args.image_size.lower().split("x"))
    images = make_images(args.images, (height, width), args.image_format, args.seed)
    with tempfile.TemporaryDirectory(prefix="bench_serving_") as temp:
        repository = args.model_repository
        if args.random_weights:
            repository = Path(temp) / "models"
            args.model = write_random_model(args.random_weights, repository)
        spec = ModelSpec.from_folder(repository / args.model)
        print(f"in-process: {args.model} on {args.device}", flush=True)
        model = InProcess(spec, args, [data for data, _ in images])
        ceilings = [model.measure()]
        cells: list[Cell] = []
        paired: Interleaved | None = None
        for batching in args.batching:
            flags = server_flags(args, repository, batching)
            log = Path(temp) / f"server-{batching}.log"
            env = dict(item.split("=", 1) for item in args.server_env)
            with ServerProcess(flags, log, env) as server:
                found, interleaved = asyncio.run(
                    measure_server(server, args, batching, images, model)
                )
            cells += found
            paired = interleaved or paired
        print("in-process again (drift check)", flush=True)
        ceilings.append(model.measure())
    report(model, ceilings, cells, paired, args)


if __name__ == "__main__":
    main()
