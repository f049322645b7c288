"""One model served alone vs beside the second shipped model (idle), in interleaved rounds.

Usage::

    .venv/bin/python benchmarks/bench_models_loaded.py [--concurrency 16] [--rounds 3]
        [--requests 96]

Three ``maskserve serve`` processes run at once on 127.0.0.1 (idle while another is
measured), each with its defaults except what the row says:

* ``alone``: ``--models yolact_shapes``;
* ``both``: the default ``maskserve serve`` (both shipped models; cores shared by load);
* ``both, static split``: both models with ``--share-cpu-cores false`` (the cores split
  once between the two models' workers, as before core sharing).

Each round sends ``--requests`` REST requests for ``yolact_shapes`` at ``--concurrency``
(closed loop, after a warm-up of one request per connection) to each server in rotating
order; printed: median img/s over rounds and the ratio to ``alone``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from pathlib import Path

import aiohttp
from bench_serving import make_images
from serving_harness import ServerProcess, drive, rest_sender

MODEL = "yolact_shapes"
SERVERS = {
    "alone": {"models": MODEL},
    "both": {},
    "both, static split": {"share-cpu-cores": "false"},
}


async def measure(servers: dict[str, ServerProcess], args: argparse.Namespace) -> dict:
    images = make_images(8, (480, 640), "jpeg", seed=0)
    rates: dict[str, list[float]] = {name: [] for name in servers}
    sessions = {
        name: aiohttp.ClientSession(
            server.url, connector=aiohttp.TCPConnector(limit=args.concurrency)
        )
        for name, server in servers.items()
    }
    try:
        names = list(servers)
        for number in range(args.rounds):
            shift = number % len(names)
            for name in names[shift:] + names[:shift]:
                send = rest_sender(sessions[name], MODEL, images)
                window = await drive(
                    send,
                    args.concurrency,
                    args.concurrency,
                    args.requests,
                    None,
                    servers[name].pid,
                )
                rates[name].append(args.requests / window.seconds)
                print(
                    f"  round {number} {name}: {rates[name][-1]:.1f} img/s, errors {window.errors}",
                    flush=True,
                )
    finally:
        for session in sessions.values():
            await session.close()
    return rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=96)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench_loaded_") as temp:
        processes = {
            name: ServerProcess(flags, Path(temp) / f"{i}.log")
            for i, (name, flags) in enumerate(SERVERS.items())
        }
        for process in processes.values():
            process.__enter__()
        try:
            rates = asyncio.run(measure(processes, args))
        finally:
            for process in processes.values():
                process.stop()
    alone = statistics.median(rates["alone"])
    print(
        f"\n## {MODEL} at concurrency {args.concurrency}, REST, {args.rounds} interleaved rounds\n"
    )
    print("| server | img/s (median) | vs alone |")
    print("|---|---|---|")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"| {name} | {rate:.1f} | {rate / alone:.2f}× |")


if __name__ == "__main__":
    main()
