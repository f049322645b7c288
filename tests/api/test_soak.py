"""A 60-second soak: mixed REST, gRPC and Open Inference Protocol traffic against a real
``maskserve serve`` process must not grow its resident memory by more than 5 %.

The baseline is the median of several RSS samples taken right after a warm-up that has
run every kind of request (so caches, pools and allocator arenas have reached their
size), the final figure the median of the last samples. The load itself is
``benchmarks/soak.py``, which ``benchmarks/bench_soak.py`` runs for 10 minutes.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest
from api_harness import MODEL

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.append(str(BENCHMARKS))  # the load generator lives with the benchmarks; last: shadows none

from serving_harness import Clients, ServerProcess  # noqa: E402
from soak import Images, Soak, soak  # noqa: E402

WARMUP_S = 20.0
MEASURED_S = 40.0
MAX_GROWTH = 0.05


def run_soak(repository: Path, images: Images, log: Path) -> Soak:
    flags = {"model-repository": repository, "models": MODEL, "devices": "cpu"}
    with ServerProcess(flags, log) as server:

        async def drive() -> Soak:
            clients = Clients(server.http_port, server.grpc_port, connections=8)
            try:
                return await soak(
                    clients, server.pid, MODEL, images, warmup_s=WARMUP_S, duration_s=MEASURED_S
                )
            finally:
                await clients.close()

        return asyncio.run(drive())


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc/<pid>/status")
def test_resident_memory_is_flat_under_mixed_traffic(
    repository: Path, png: bytes, jpeg: bytes, tmp_path: Path
) -> None:
    run = run_soak(repository, Images(png=png, jpeg=jpeg), tmp_path / "serve.log")
    mib = 1024 * 1024
    summary = (
        f"RSS {run.baseline / mib:.1f} -> {run.final / mib:.1f} MiB ({run.growth:+.1%}) "
        f"over {run.samples[-1][0]:.0f} s, {sum(run.done.values())} requests, "
        f"{run.throughput():.1f}/s after warm-up; by kind {dict(run.done)}"
    )
    print(summary)
    assert not run.wrong, f"unexpected answers {dict(run.wrong)}: {run.first_wrong}"
    assert set(run.done) == {
        "rest_png",
        "rest_multipart_options",
        "rest_refusals",
        "grpc_segment",
        "grpc_stream",
        "grpc_refusal",
        "oip_infer",
    }
    assert run.growth <= MAX_GROWTH, summary
