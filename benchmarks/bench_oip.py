"""The Open Inference Protocol path against the native gRPC one, on the same server.

Usage::

    .venv/bin/python benchmarks/bench_oip.py [--model yolact_shapes] [--rounds 3]
        [--concurrency 1,4,8] [--requests 64] [--warmup 8]

One ``maskserve serve`` subprocess (127.0.0.1, free ports). Per round, at each concurrency,
closed loops drive ``inference.GRPCInferenceService/ModelInfer`` through the real
``tritonclient.grpc.aio`` and ``maskserve.v1.Segmentation/Segment`` through the native
stub, back to back, alternating which goes first (interleaved rounds, so machine drift
hits both alike). Reports, per concurrency, throughput and p50/p99 of each path (medians
over rounds) and the per-round throughput ratio OIP / native.
Targets (issue 11): throughput ≥ 0.9 × native, p50 within 2 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
import tritonclient.grpc.aio as triton
from bench_serving import make_images
from serving_harness import Clients, Send, ServerProcess, drive


def oip_sender(client: triton.InferenceServerClient, model: str, images: list[bytes]) -> Send:
    inputs = []
    for data in images:
        tensor = triton.InferInput("IMAGE", [1], "BYTES")
        tensor.set_data_from_numpy(np.array([data], dtype=np.object_))
        inputs.append(tensor)

    async def send(number: int) -> dict[str, float] | str:
        try:
            await client.infer(model, [inputs[number % len(inputs)]], client_timeout=120)
        except Exception as exc:  # tritonclient wraps every failure in its own type
            return f"{type(exc).__name__}: {exc}"
        return {}

    return send


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1000


async def measure(args: argparse.Namespace, server: ServerProcess) -> list[str]:
    images = make_images(8, (240, 320), "png", seed=3)
    clients = Clients(server.http_port, server.grpc_port, max(args.concurrency))
    oip = triton.InferenceServerClient(f"127.0.0.1:{server.grpc_port}")
    senders = {
        "native": clients.sender("grpc", args.model, images),
        "oip": oip_sender(oip, args.model, [data for data, _ in images]),
    }
    results: dict[tuple[int, str], list[tuple[float, float, float]]] = {}
    try:
        for number in range(args.rounds):
            for concurrency in args.concurrency:
                order = ["native", "oip"] if number % 2 == 0 else ["oip", "native"]
                for name in order:
                    window = await drive(
                        senders[name], concurrency, args.warmup, args.requests, None, server.pid
                    )
                    if window.errors:
                        raise RuntimeError(f"{name}: {window.first_error}")
                    rate = len(window.latencies) / window.seconds
                    p50 = percentile(window.latencies, 50)
                    p99 = percentile(window.latencies, 99)
                    results.setdefault((concurrency, name), []).append((rate, p50, p99))
                    print(f"round {number} c={concurrency} {name}: {rate:.2f} img/s", flush=True)
    finally:
        await clients.close()
        await oip.close()
    return report(results, args)


def report(results: dict[tuple[int, str], list[tuple[float, float, float]]], args) -> list[str]:
    lines = [
        "| concurrency | native img/s | OIP img/s | OIP/native (per-round median) "
        "| native p50 / p99 ms | OIP p50 / p99 ms |",
        "|---|---|---|---|---|---|",
    ]
    for concurrency in args.concurrency:
        native, oip = results[(concurrency, "native")], results[(concurrency, "oip")]
        ratios = [o[0] / n[0] for o, n in zip(oip, native, strict=True)]

        def med(rows: list[tuple[float, float, float]], i: int) -> float:
            return statistics.median(r[i] for r in rows)

        lines.append(
            f"| {concurrency} | {med(native, 0):.2f} | {med(oip, 0):.2f} "
            f"| {statistics.median(ratios):.3f} | {med(native, 1):.1f} / {med(native, 2):.1f} "
            f"| {med(oip, 1):.1f} / {med(oip, 2):.1f} |"
        )
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="yolact_shapes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--concurrency", type=lambda s: [int(v) for v in s.split(",")], default=[1, 4, 8]
    )
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=8)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        flags = {"models": args.model, "devices": "cpu"}
        with ServerProcess(flags, Path(tmp) / "server.log") as server:
            lines = asyncio.run(measure(args, server))
    print("\n".join(lines))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
