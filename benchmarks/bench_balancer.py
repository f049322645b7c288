"""Throughput through nginx with 1, 2 and 3 replicas, nginx's added latency, and the spread.

Usage (needs a Docker engine: ``tests/deploy/docker_engine.sh start``)::

    .venv/bin/python benchmarks/bench_balancer.py [--replicas 1,2,3] [--concurrency 8]
        [--requests 240] [--warmup 24] [--latency-rounds 6] [--latency-requests 40]
        [--pairs 150]

Builds and starts the scaled compose stack exactly as tests/deploy/test_scaled_stack.py
does (same image, stand-ins and wheelhouse; ``MASKSERVE_MODELS=yolact_shapes``), plus one
benchmark-only override file that also publishes each replica's REST port on 127.0.0.1, so
a replica can be reached without nginx. Then, at each replica count (``--scale``, the
stack is not restarted):

- throughput: ``--concurrency`` closed REST loops through nginx (aiohttp, the harness of
  bench_serving.py), ``--warmup`` requests, then ``--requests`` measured;
- spread: each replica's ``maskserve_requests_total`` before and after that window, read
  from its own ``/metrics``;
- at one replica only: ``--latency-rounds`` rounds that alternate ``--latency-requests``
  sequential requests straight to the replica with as many through nginx (the same
  replica behind both), so the machine's drift hits both sides alike; nginx's added p50
  is the median over rounds of (p50 through nginx − p50 direct); then ``--pairs`` pairs of
  single requests, one direct and one through nginx back to back (order alternating), whose
  median difference is the figure least moved by a machine whose load swings (it is shared).

All replicas share this machine's cores, so throughput is not expected to grow with the
replica count here: the point is what nginx costs and how evenly it spreads.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from serving_harness import drive, rest_sender

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "deploy"))

import standins  # noqa: E402
import wheelhouse  # noqa: E402
from compose_stack import (  # noqa: E402
    COMPOSE_FILES,
    Stack,
    engine_answers,
    free_port,
    remove_leftovers,
)

MODEL = "yolact_shapes"
IMAGE = ROOT / "models" / "zoo" / MODEL / "example.png"
WHEELHOUSE = Path(os.environ.get("MASKSERVE_WHEELHOUSE", "/var/tmp/maskserve-docker/wheelhouse"))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--replicas", default="1,2,3")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--requests", type=int, default=240)
    parser.add_argument("--warmup", type=int, default=24)
    parser.add_argument("--latency-rounds", type=int, default=6)
    parser.add_argument("--latency-requests", type=int, default=40)
    parser.add_argument("--pairs", type=int, default=150)
    return parser.parse_args()


def port_range(count: int) -> int:
    """The first of ``count`` consecutive ports that are free on 127.0.0.1 now."""
    for _ in range(200):
        first = free_port()
        if first + count < 65535 and all(free_port_is(first + i) for i in range(count)):
            return first
    raise RuntimeError("no free port range")


def free_port_is(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def direct_urls(stack: Stack) -> dict[str, str]:
    """Each running replica's own REST address (the benchmark override publishes it)."""
    urls = {}
    for name in stack.replicas():
        out = subprocess.run(
            ["docker", "port", name, "8000/tcp"], capture_output=True, text=True, check=True
        ).stdout.split()
        urls[name] = f"http://{out[0]}"
    return urls


def served(url: str) -> float:
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as reply:
        text = reply.read().decode()
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        if family.name == "maskserve_requests"
        for s in family.samples
        if s.name.endswith("_total") and s.labels.get("status") == "ok"
    )


async def window(
    url: str, concurrency: int, warmup: int, count: int
) -> tuple[float, list[float], int]:
    """(images/s, latencies in s, errors) of one closed-loop REST window against ``url``."""
    images = [(IMAGE.read_bytes(), "image/png")]
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as session:
        result = await drive(
            rest_sender(session, MODEL, images), concurrency, warmup, count, None, os.getpid()
        )
    return count / result.seconds, result.latencies, result.errors


def latency_rounds(stack: Stack, args: argparse.Namespace) -> None:
    (direct,) = direct_urls(stack).values()
    gaps, p50s = [], {"direct": [], "nginx": []}
    for number in range(args.latency_rounds):
        p50 = {}
        for side, url in (("direct", direct), ("nginx", stack.http_url)):
            _, lat, errors = asyncio.run(window(url, 1, 4, args.latency_requests))
            assert errors == 0, f"{errors} errors {side}"
            p50[side] = statistics.median(lat) * 1000
            p50s[side].append(p50[side])
        gaps.append(p50["nginx"] - p50["direct"])
        print(
            f"  round {number + 1}: p50 direct {p50['direct']:.2f} ms, "
            f"through nginx {p50['nginx']:.2f} ms, added {gaps[-1]:+.2f} ms",
            flush=True,
        )
    print(
        f"latency, concurrency 1, 1 replica: p50 direct "
        f"{statistics.median(p50s['direct']):.2f} ms, "
        f"through nginx {statistics.median(p50s['nginx']):.2f} ms; nginx adds "
        f"{statistics.median(gaps):+.2f} ms at p50 (median of {len(gaps)} rounds, "
        f"range {min(gaps):+.2f} … {max(gaps):+.2f})",
        flush=True,
    )


async def paired(direct: str, nginx: str, pairs: int) -> tuple[list[float], list[float]]:
    """Seconds of ``pairs`` requests straight to the replica and as many through nginx, sent
    in back-to-back pairs (order alternating): the two sides of a pair see the same load."""
    data, path = IMAGE.read_bytes(), f"/v1/models/{MODEL}/segment"
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:

        async def once(base: str) -> float:
            began = time.perf_counter()
            headers = {"content-type": "image/png"}
            async with session.post(base + path, data=data, headers=headers) as reply:
                await reply.read()
                assert reply.status == 200, reply.status
            return time.perf_counter() - began

        for base in (direct, nginx, direct, nginx):
            await once(base)
        sides: dict[str, list[float]] = {direct: [], nginx: []}
        for number in range(pairs):
            for base in (direct, nginx) if number % 2 == 0 else (nginx, direct):
                sides[base].append(await once(base))
    return sides[direct], sides[nginx]


def paired_latency(stack: Stack, args: argparse.Namespace) -> None:
    (direct,) = direct_urls(stack).values()
    d, n = asyncio.run(paired(direct, stack.http_url, args.pairs))
    gaps = sorted((b - a) * 1000 for a, b in zip(d, n, strict=True))
    print(
        f"paired latency, 1 replica, {args.pairs} pairs: p50 direct "
        f"{statistics.median(d) * 1000:.2f} ms, through nginx {statistics.median(n) * 1000:.2f} "
        f"ms; per-pair difference median {statistics.median(gaps):+.2f} ms "
        f"(quartiles {gaps[len(gaps) // 4]:+.2f} … {gaps[3 * len(gaps) // 4]:+.2f}); "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def throughput(stack: Stack, replicas: int, args: argparse.Namespace) -> None:
    urls = direct_urls(stack)
    assert len(urls) == replicas, urls
    before = {name: served(url) for name, url in urls.items()}
    rate, lat, errors = asyncio.run(
        window(stack.http_url, args.concurrency, args.warmup, args.requests)
    )
    after = {name: served(url) for name, url in urls.items()}
    counts = [after[n] - before[n] for n in urls]
    shares = ", ".join(f"{c / sum(counts):.0%}" for c in counts)
    ideal = 1 / replicas
    worst = max(abs(c / sum(counts) - ideal) for c in counts)
    print(
        f"replicas {replicas}: {rate:.1f} img/s through nginx (concurrency {args.concurrency}, "
        f"{args.requests} requests, p50 {statistics.median(lat) * 1000:.1f} ms, "
        f"errors {errors}); spread {shares} of {int(sum(counts))} requests "
        f"(warm-up included; worst deviation from even {worst:.1%}); "
        f"load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def main() -> int:
    args = parse_args()
    counts = [int(n) for n in args.replicas.split(",")]
    if not engine_answers():
        print("no Docker engine answers: tests/deploy/docker_engine.sh start", file=sys.stderr)
        return 2
    print(
        f"bench_balancer {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}; "
        f"{os.cpu_count()} cores, load average {os.getloadavg()}",
        flush=True,
    )
    remove_leftovers("maskserve-bench")
    standins.ensure_all()
    wheelhouse.ensure(WHEELHOUSE)
    with tempfile.TemporaryDirectory() as tmp:
        override = Path(tmp) / "publish-replicas.yml"
        first = port_range(max(counts))
        override.write_text(
            "services:\n  maskserve:\n    ports:\n"
            f'      - "127.0.0.1:{first}-{first + max(counts) - 1}:8000"\n'
        )
        stack = Stack.create("maskserve-bench", MASKSERVE_MODELS=MODEL)
        stack.files = (*COMPOSE_FILES, override)
        with wheelhouse.serve(WHEELHOUSE) as index:
            stack.build(TORCH_INDEX_URL=index)
        try:
            for number, replicas in enumerate(counts):
                stack.up(replicas)
                if number == 0 and replicas == 1:
                    latency_rounds(stack, args)
                    paired_latency(stack, args)
                throughput(stack, replicas, args)
        finally:
            stack.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
