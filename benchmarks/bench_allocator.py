"""glibc malloc as it comes vs ``retain_freed_memory`` (server/allocator.py), per forward pass.

Usage::

    .venv/bin/python benchmarks/bench_allocator.py [--rounds 4] [--calls 15] [--model NAME]

Each round starts one fresh interpreter per mode (in alternating order, so drift of the
machine hits both alike). A child builds the model's backend as the server does, then runs
``--calls`` batch-1 forward passes on a worker thread (as the server's worker does) after a
warm-up, and reports the median time and the median minor page faults per call.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from maskserve.models.registry import DEFAULT_MODEL

CHILD = """
import json, resource, statistics, sys, time
from concurrent.futures import ThreadPoolExecutor
import numpy as np, torch
from maskserve.allocator import retain_freed_memory
from maskserve.models.registry import ZOO_DIR, ModelSpec, build_backend
from maskserve.models.synthetic.generator import generate_sample
from maskserve.workers import configure_cpu_threads
mode, model, calls = sys.argv[1], sys.argv[2], int(sys.argv[3])
if mode == "retained":
    retain_freed_memory()
configure_cpu_threads(1)
backend = build_backend(ModelSpec.from_folder(ZOO_DIR / model), torch.device("cpu"))
image = generate_sample(np.random.default_rng(0), 480, 640).image
def call():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    began = time.perf_counter()
    backend.infer([image], backend.info.max_detections)
    seconds = time.perf_counter() - began
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
with ThreadPoolExecutor(1) as worker:
    runs = [worker.submit(call).result() for _ in range(calls + 5)][5:]
print(json.dumps({"ms": 1e3 * statistics.median(s for s, _ in runs),
                  "faults": statistics.median(f for _, f in runs)}))
"""
MODES = ("default", "retained")


def child(mode: str, model: str, calls: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode, model, str(calls)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--calls", type=int, default=15)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    for number in range(args.rounds):
        order = MODES if number % 2 == 0 else MODES[::-1]
        for mode in order:
            results[mode].append(child(mode, args.model, args.calls))
            print(f"round {number} {mode}: {results[mode][-1]}", flush=True)
    print(f"\n| {args.model}, batch 1, worker thread | forward p50 ms | minor faults per call |")
    print("|---|---|---|")
    for mode in MODES:
        ms = statistics.median(r["ms"] for r in results[mode])
        faults = statistics.median(r["faults"] for r in results[mode])
        print(f"| {mode} | {ms:.1f} | {faults:.0f} |")
    ratios = [
        d["ms"] / r["ms"] for d, r in zip(results["default"], results["retained"], strict=True)
    ]
    print(f"\ndefault / retained, median over rounds: {statistics.median(ratios):.3f}x")


if __name__ == "__main__":
    main()
