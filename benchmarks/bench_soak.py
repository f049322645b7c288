"""A long soak: mixed REST, gRPC and Open Inference Protocol traffic against a ``maskserve
serve`` process, its resident memory and throughput printed over time.

Usage::

    .venv/bin/python benchmarks/bench_soak.py [--duration 600] [--warmup 30]
        [--concurrency 4] [--report-every 10] [--model yolact_shapes] [--device cpu]

The traffic is ``soak.py``'s (every kind of request in every round, refusals included);
``tests/api/test_soak.py`` runs the same for 60 seconds in CI. The baseline RSS is the
median of the first samples after warm-up, the final one the median of the last samples;
the growth between them is what a leak would show.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from serving_harness import Clients, ServerProcess
from soak import Images, Soak, soak

from maskserve.models.registry import ZOO_DIR
from maskserve.models.synthetic.generator import generate_sample

MIB = 1024 * 1024


def scene() -> Images:
    """The synthetic shapes scene the tests use, as PNG and JPEG."""
    pixels = generate_sample(np.random.default_rng(20240607), 240, 320, max_objects=5).image
    encoded = {}
    for fmt in ("PNG", "JPEG"):
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format=fmt)
        encoded[fmt] = buffer.getvalue()
    return Images(png=encoded["PNG"], jpeg=encoded["JPEG"])


def reporter(every_s: float) -> Callable[[Soak], None]:
    """A sample callback printing a line every ``every_s`` seconds of the run."""
    last = [0.0, 0.0]  # time and request count of the previous line

    def report(run: Soak) -> None:
        now, rss, count = run.samples[-1]
        if now - last[0] < every_s:
            return
        rate = (count - last[1]) / (now - last[0]) if now > last[0] else 0.0
        phase = "warm-up" if run.warm_index is None else "measured"
        print(f"{now:8.1f} s  {rss / MIB:8.1f} MiB  {count:7d} req  {rate:6.1f} req/s  {phase}")
        sys.stdout.flush()
        last[0], last[1] = now, count

    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds before the baseline")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--report-every", type=float, default=10.0)
    parser.add_argument("--model", default="yolact_shapes")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    flags = {"model-repository": ZOO_DIR, "models": args.model, "devices": args.device}
    with tempfile.TemporaryDirectory() as tmp, ServerProcess(flags, Path(tmp) / "serve.log") as srv:
        print(f"server pid {srv.pid}: {' '.join(srv.command[2:])}")
        print(
            f"warm-up {args.warmup:.0f} s, measured {args.duration:.0f} s, {args.concurrency} "
            "closed loops over every request kind; one 'req' is one kind's exchange "
            "(rest_refusals: 5 HTTP requests, grpc_stream: 3 frames)"
        )
        print(f"{'time':>10}  {'RSS':>12}  {'requests':>11}  {'rate':>12}")
        report = reporter(args.report_every)

        async def drive() -> Soak:
            clients = Clients(srv.http_port, srv.grpc_port, connections=2 * args.concurrency)
            try:
                return await soak(
                    clients,
                    srv.pid,
                    args.model,
                    scene(),
                    warmup_s=args.warmup,
                    duration_s=args.duration,
                    concurrency=args.concurrency,
                    on_sample=report,
                )
            finally:
                await clients.close()

        run = asyncio.run(drive())
    print(
        f"RSS baseline {run.baseline / MIB:.1f} MiB, final {run.final / MIB:.1f} MiB, "
        f"growth {run.growth:+.2%}; peak {max(s[1] for s in run.samples) / MIB:.1f} MiB"
    )
    print(f"throughput after warm-up: {run.throughput():.2f} req/s (all kinds)")
    print(f"requests by kind: {dict(run.done)}")
    print(f"unexpected answers: {dict(run.wrong) or 'none'} {run.first_wrong}")


if __name__ == "__main__":
    main()
