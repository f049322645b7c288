"""``maskserve-client bench``: throughput and latency of a server's native API under load.

Closed-loop levels (``--concurrency``) run first, then open-loop ones (``--rate``), each
with its own warm-up; the table goes to stdout, progress bars to stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from maskserve_client._cliargs import add_options, positive_float, positive_int
from maskserve_client.bench import report
from maskserve_client.bench.inputs import generate_images, parse_size, read_images
from maskserve_client.bench.load import Plan, closed_loop, open_loop, plan_arrivals
from maskserve_client.bench.stats import LevelStats, summarize
from maskserve_client.bench.targets import GrpcStreamTarget, GrpcTarget, RestTarget, Target
from maskserve_client.rest import DEFAULT_URL

#: REST connections for open-loop levels (closed ones need their concurrency).
OPEN_LOOP_CONNECTIONS = 64


@dataclass(frozen=True)
class Warmup:
    """``--warmup``: a number of requests, seconds, or None for the default."""

    requests: int | None = None
    seconds: float | None = None


def warmup_arg(text: str) -> Warmup:
    """``auto``, ``N`` (requests) or ``Ns`` (seconds)."""
    try:
        if text == "auto":
            return Warmup()
        if text.endswith("s"):
            seconds = float(text[:-1])
            if seconds >= 0 and math.isfinite(seconds):
                return Warmup(seconds=seconds)
        elif int(text) >= 0:
            return Warmup(requests=int(text))
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected auto, N (requests) or Ns (seconds), got {text!r}")


def listed(kind: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    """An argparse type: comma-separated values of ``kind``, at least one."""

    def parse(text: str) -> list[Any]:
        values = [kind(part.strip()) for part in text.split(",") if part.strip()]
        if not values:
            raise argparse.ArgumentTypeError(f"expected comma-separated values, got {text!r}")
        return values

    return parse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--url", help=f"REST address (the default: {DEFAULT_URL})")
    where.add_argument("--target", metavar="HOST:PORT", help="gRPC address (instead of REST)")
    parser.add_argument("--stream", action="store_true", help="gRPC SegmentStream, not unary")
    parser.add_argument("--api-key", metavar="KEY", help="sent as a Bearer token")
    add_options(parser)
    parser.add_argument(
        "--mask-format", choices=("rle", "runs", "none"), default="rle", help="runs: gRPC only"
    )
    load = parser.add_argument_group("load (per level: a warm-up, then the measured part)")
    add = load.add_argument
    add("--concurrency", type=listed(positive_int), metavar="N,N", help="closed-loop levels")
    add("--rate", type=listed(positive_float), metavar="R,R", help="open-loop levels, per second")
    length = load.add_mutually_exclusive_group()
    length.add_argument("--requests", type=positive_int, metavar="N", help="(default 100)")
    length.add_argument("--duration", type=positive_float, metavar="S", help="seconds")
    add(
        "--warmup",
        type=warmup_arg,
        default=Warmup(),
        metavar="N|Ns",
        help="requests (N) or seconds (Ns); default 2 x concurrency, or ~1 s of arrivals",
    )
    add("--seed", type=int, default=0, help="of the arrivals and the generated images")
    add("--streams", type=positive_int, default=1, metavar="N", help="of an open loop --stream")
    add("--timeout", type=positive_float, default=60.0, metavar="S", help="per request (60)")
    add("--wait", type=positive_float, default=10.0, metavar="S", help="for the server (10)")
    images = parser.add_argument_group("images")
    pick = images.add_mutually_exclusive_group().add_argument
    pick("--images", nargs="+", type=Path, metavar="PATH", help="image files and/or folders")
    pick("--generate", type=positive_int, default=4, metavar="N", help="random shapes (4)")
    images.add_argument("--size", type=parse_size_arg, default=(640, 480), metavar="WxH")
    images.add_argument("--image-format", choices=("jpeg", "png"), default="jpeg")
    out = parser.add_argument_group("output")
    out.add_argument("--json", type=Path, metavar="FILE", help="write the results as JSON")
    out.add_argument("--csv", type=Path, metavar="FILE", help="write one CSV row per level")
    out.add_argument("--plot", type=Path, metavar="FILE.png", help="latency vs throughput")
    out.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


def parse_size_arg(text: str) -> tuple[int, int]:
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def check_arguments(args: argparse.Namespace) -> str | None:
    """What is wrong with a combination of arguments, or None; fills in defaults."""
    if args.stream and args.target is None:
        return "--stream needs --target (SegmentStream is gRPC)"
    if args.mask_format == "runs" and args.target is None:
        return "--mask-format runs is gRPC only"
    if args.concurrency is None and args.rate is None:
        args.concurrency = [1]
    if args.requests is None and args.duration is None:
        args.requests = 100
    if args.plot is not None:
        if len(args.concurrency or ()) + len(args.rate or ()) < 2:
            return "--plot needs at least two levels (--concurrency and/or --rate values)"
        try:
            report.require_matplotlib()  # fail now rather than after the load
        except RuntimeError as exc:
            return str(exc)
    return None


def plan_of(args: argparse.Namespace, default_warmup: int) -> Plan:
    warmup: Warmup = args.warmup
    requests = warmup.requests
    if requests is None and warmup.seconds is None:
        requests = default_warmup
    return Plan(args.requests, args.duration, requests or 0, warmup.seconds or 0.0)


def make_target(args: argparse.Namespace) -> Target:
    options: dict[str, Any] = {
        "model": args.model,
        "score_threshold": args.score_threshold,
        "max_detections": args.max_detections,
        "classes": args.classes,
        "mask_format": args.mask_format,
    }
    if args.target is None:
        connections = max([*(args.concurrency or [1]), OPEN_LOOP_CONNECTIONS if args.rate else 1])
        url = args.url or DEFAULT_URL
        return RestTarget(url, options, connections, timeout=args.timeout, api_key=args.api_key)
    kind = GrpcStreamTarget if args.stream else GrpcTarget
    return kind(args.target, options, timeout=args.timeout, api_key=args.api_key)


def progress(args: argparse.Namespace, label: str, total: int | None) -> tqdm[Any]:
    enabled = not args.no_progress and sys.stderr.isatty()
    return tqdm(
        total=total, desc=label, unit="img", file=sys.stderr, disable=not enabled, leave=False
    )


async def run_levels(args: argparse.Namespace, images: Sequence[bytes]) -> list[LevelStats] | None:
    """Every level's figures, or None when the server did not answer."""
    target = make_target(args)
    try:
        if not await target.ready(args.wait):
            return None
        levels = []
        for concurrency in args.concurrency or ():
            plan = plan_of(args, 2 * concurrency)
            total = None if plan.requests is None else plan.warmup_requests + plan.requests
            await target.begin_level(concurrency, pipelined=False)
            with progress(args, f"{target.protocol} conc {concurrency}", total) as bar:
                window = await closed_loop(target.send, images, concurrency, plan, bar.update)
            await target.end_level()
            levels.append(summarize(window, target.protocol, concurrency=concurrency))
        for rate in args.rate or ():
            plan = plan_of(args, max(2, math.ceil(rate)))
            arrivals, warmup = plan_arrivals(plan, rate, np.random.default_rng(args.seed))
            await target.begin_level(args.streams, pipelined=True)
            with progress(args, f"{target.protocol} rate {rate:g}/s", len(arrivals)) as bar:
                window = await open_loop(target.send, images, arrivals, warmup, bar.update)
            await target.end_level()
            levels.append(summarize(window, target.protocol, rate=rate))
        return levels
    finally:
        await target.aclose()


def settings_of(args: argparse.Namespace, images: Sequence[bytes]) -> dict[str, Any]:
    """What the JSON file records about the run."""
    return {
        "url": None if args.target else (args.url or DEFAULT_URL),
        "target": args.target,
        "stream": args.stream,
        "model": args.model,
        "concurrency": args.concurrency,
        "rate": args.rate,
        "requests": args.requests,
        "duration_s": args.duration,
        "warmup": {"requests": args.warmup.requests, "seconds": args.warmup.seconds},
        "seed": args.seed,
        "images": [str(p) for p in args.images] if args.images else None,
        "generated": None if args.images else f"{args.generate} x {args.size[0]}x{args.size[1]}",
        "image_count": len(images),
    }


def load_images(args: argparse.Namespace) -> list[bytes]:
    if args.images:
        return read_images(args.images)
    return generate_images(args.generate, args.size, args.seed, args.image_format.upper())


def run(args: argparse.Namespace) -> int:
    problem = check_arguments(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        images = load_images(args)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    levels = asyncio.run(run_levels(args, images))
    if levels is None:
        where = args.target or args.url or DEFAULT_URL
        print(f"error: no answer from {where} within {args.wait:g} s", file=sys.stderr)
        return 1
    print(report.table(levels))
    if args.json is not None:
        report.write_json(args.json, levels, settings_of(args, images))
    if args.csv is not None:
        report.write_csv(args.csv, levels)
    if args.plot is not None:
        report.write_plot(args.plot, levels)
    return 0 if all(s.ok == s.requests and s.requests > 0 for s in levels) else 1
