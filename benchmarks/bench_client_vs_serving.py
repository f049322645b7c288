"""``maskserve-client bench`` against bench_serving's own load generator, one server.

Usage::

    .venv/bin/python benchmarks/bench_client_vs_serving.py [--rounds 5] [--requests 80]
        [--warmup 8] [--concurrency 1,4] [--model yolact_shapes]

One ``maskserve serve`` on free 127.0.0.1 ports with bench_serving's batching-on flags
(``server_flags``: max batch 8, 5 ms queue delay). bench_serving's images (``make_images``:
3 synthetic 480x640 JPEGs and the shipped example.png) are written to a folder, so both
tools send the same bytes in the same order, over REST. For each concurrency, every round
runs both, back to back, in an order that swaps from round to round:

- serving: bench_serving's closed loop (``serving_harness.drive`` + ``rest_sender``:
  aiohttp, one asyncio thread, in this process), ``max(--warmup, 2 x conc)`` warm-up
  requests, then ``--requests`` measured;
- client: ``maskserve-client bench --concurrency c --requests n --warmup w --images DIR``
  in a subprocess (the client library's httpx ``AsyncClient``), its JSON read back.

Printed: each round's images/s, and per concurrency the medians and the median of the
per-round ratios client / serving (the target: within 10 %).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from pathlib import Path

from bench_serving import csv, make_images, server_flags
from bench_serving import parse_args as serving_args
from serving_harness import Clients, ServerProcess, drive

from maskserve.models.registry import ZOO_DIR

SUFFIXES = {"image/jpeg": "jpg", "image/png": "png"}


def write_images(folder: Path, seed: int) -> list[tuple[bytes, str]]:
    """bench_serving's images, also as ``00.jpg``, ``01.jpg``, ... (sorted names keep the
    order for the client)."""
    images = make_images(3, (480, 640), "jpeg", seed)
    folder.mkdir()
    for number, (data, content_type) in enumerate(images):
        (folder / f"{number:02d}.{SUFFIXES[content_type]}").write_bytes(data)
    return images


async def serving_block(
    clients: Clients,
    server: ServerProcess,
    model: str,
    images: list[tuple[bytes, str]],
    concurrency: int,
    warmup: int,
    requests: int,
) -> tuple[float, float]:
    """bench_serving's closed loop: (images/s, p50 ms)."""
    send = clients.sender("rest", model, images)
    window = await drive(send, concurrency, warmup, requests, None, server.pid)
    if window.errors:
        raise RuntimeError(f"bench_serving's load failed: {window.first_error}")
    return len(window.latencies) / window.seconds, 1e3 * statistics.median(window.latencies)


async def client_block(
    server: ServerProcess,
    model: str,
    folder: Path,
    out: Path,
    concurrency: int,
    warmup: int,
    requests: int,
) -> tuple[float, float]:
    """``maskserve-client bench`` in a subprocess: (images/s, p50 ms)."""
    command = [
        sys.executable, "-m", "maskserve_client.cli", "bench", "--url", server.url,
        "--model", model, "--concurrency", str(concurrency), "--requests", str(requests),
        "--warmup", str(warmup), "--images", str(folder), "--json", str(out), "--no-progress",
    ]  # fmt: skip
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(
            f"maskserve-client bench exited {process.returncode}:\n{output.decode()}"
        )
    (level,) = json.loads(out.read_text())["levels"]
    return level["throughput"], level["latency_ms"]["p50"]


async def measure(
    server: ServerProcess,
    args: argparse.Namespace,
    images: list[tuple[bytes, str]],
    folder: Path,
    out: Path,
) -> dict[int, dict[str, list[tuple[float, float]]]]:
    clients = Clients(server.http_port, server.grpc_port, max(args.concurrency))
    results: dict[int, dict[str, list[tuple[float, float]]]] = {}
    try:
        for concurrency in args.concurrency:
            warmup = max(args.warmup, 2 * concurrency)
            blocks = {
                "serving": lambda c=concurrency, w=warmup: serving_block(
                    clients, server, args.model, images, c, w, args.requests
                ),
                "client": lambda c=concurrency, w=warmup: client_block(
                    server, args.model, folder, out, c, w, args.requests
                ),
            }
            found: dict[str, list[tuple[float, float]]] = {name: [] for name in blocks}
            for number in range(args.rounds):
                order = list(blocks) if number % 2 == 0 else list(reversed(blocks))
                for name in order:
                    ips, p50 = await blocks[name]()
                    found[name].append((ips, p50))
                    line = f"{ips:.2f} img/s, p50 {p50:.1f} ms"
                    print(f"  conc {concurrency} round {number} {name}: {line}", flush=True)
            results[concurrency] = found
    finally:
        await clients.close()
    return results


def report(results: dict[int, dict[str, list[tuple[float, float]]]]) -> None:
    print(
        "\n| conc | rounds | bench_serving img/s | maskserve-client img/s "
        "| client / serving (median of rounds) | p50 ms serving | p50 ms client |"
    )
    print("|---|---|---|---|---|---|---|")
    for concurrency, found in results.items():
        serving, client = found["serving"], found["client"]
        ratios = [c[0] / s[0] for c, s in zip(client, serving, strict=True)]
        print(
            f"| {concurrency} | {len(ratios)} | {statistics.median(s[0] for s in serving):.2f} "
            f"| {statistics.median(c[0] for c in client):.2f} | {statistics.median(ratios):.3f} "
            f"| {statistics.median(s[1] for s in serving):.1f} "
            f"| {statistics.median(c[1] for c in client):.1f} |"
        )
    print("\ntarget: the client's throughput within 10 % of bench_serving's (ratio 0.90-1.10)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="yolact_shapes")
    parser.add_argument("--concurrency", type=csv(int), default=[1, 4])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=80, help="measured, per block")
    parser.add_argument("--warmup", type=int, default=8, help="per block (>= 2 x conc)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    conc = ",".join(map(str, args.concurrency))
    defaults = serving_args(["--model", args.model, "--concurrency", conc])
    with tempfile.TemporaryDirectory(prefix="client_vs_serving_") as temp:
        folder = Path(temp) / "images"
        images = write_images(folder, args.seed)
        flags = server_flags(defaults, ZOO_DIR, "on")
        print(f"server flags: {flags}", flush=True)
        with ServerProcess(flags, Path(temp) / "server.log") as server:
            results = asyncio.run(measure(server, args, images, folder, Path(temp) / "c.json"))
    print(f"\n## maskserve-client bench vs bench_serving: {args.model}, REST, cpu")
    report(results)


if __name__ == "__main__":
    main()
