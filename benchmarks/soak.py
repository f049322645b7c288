"""Mixed REST + gRPC + Open Inference Protocol traffic against a ``maskserve serve`` process,
with the server's resident memory (``VmRSS`` in ``/proc/<pid>/status``) sampled throughout.

Shared by ``bench_soak.py`` (10 minutes, RSS over time and throughput) and
``tests/api/test_soak.py`` (60 seconds, fails on growth). Every kind of request in
:data:`KINDS` runs in every round: good images over each protocol and encoding, options,
RAW_RUNS masks, streams with a bad frame inside, and the refusals (400, 404, 415,
NOT_FOUND), so that the warm-up has already touched every code path before the baseline
is taken. Workers are threads of the server process, so one RSS covers them all.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import grpc
from maskserve_client.gen import segment_pb2 as pb
from serving_harness import Clients

from maskserve.api.oip_tensors import pack_bytes

SAMPLE_EVERY_S = 0.5
"""RSS is read after a request completes, at most this often (no timer, no sleep)."""
PNG = {"content-type": "image/png"}
MEDIAN_OF = 7
"""Samples whose median is the baseline (right after warm-up) and the final figure."""


@dataclass(frozen=True)
class Images:
    png: bytes
    jpeg: bytes


def rss_bytes(pid: int) -> int:
    """Resident set size of ``pid`` (all its threads), from ``/proc/<pid>/status``."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


Kind = Callable[[Clients, str, Images], Awaitable[bool]]
"""One request of one kind: True when answered as expected (200, or the right refusal)."""


async def _post(clients: Clients, path: str, expect: int, **kwargs: object) -> bool:
    async with clients.http.post(path, **kwargs) as reply:  # type: ignore[arg-type]
        await reply.read()
        return reply.status == expect


async def rest_png(clients: Clients, model: str, images: Images) -> bool:
    headers = {"content-type": "image/png"}
    return await _post(
        clients, f"/v1/models/{model}/segment", 200, data=images.png, headers=headers
    )


async def rest_multipart_options(clients: Clients, model: str, images: Images) -> bool:
    form = aiohttp.FormData()
    form.add_field("image", images.jpeg, filename="x.jpg", content_type="image/jpeg")
    params = {"score_threshold": "0.5", "max_detections": "3", "classes": "0,1,2"}
    return await _post(clients, f"/v1/models/{model}/segment", 200, data=form, params=params)


async def rest_refusals(clients: Clients, model: str, images: Images) -> bool:
    path = f"/v1/models/{model}/segment"
    bad = await _post(
        clients, path, 400, data=b"not an image", headers={"content-type": "image/png"}
    )
    text = await _post(clients, path, 415, data=b"hello", headers={"content-type": "text/plain"})
    unknown = await _post(
        clients,
        "/v1/models/nope/segment",
        404,
        data=images.png,
        headers={"content-type": "image/png"},
    )
    async with clients.http.get("/v1/models") as models, clients.http.get("/metrics") as metrics:
        await models.read()
        await metrics.read()
        listed = models.status == metrics.status == 200
    return bad and text and unknown and listed


async def grpc_segment(clients: Clients, model: str, images: Images) -> bool:
    options = pb.SegmentOptions(mask_format=pb.RLE_RAW_RUNS, score_threshold=0.2)
    reply = await clients.stub.Segment(
        pb.SegmentRequest(model=model, image=images.jpeg, options=options), timeout=120
    )
    return reply.model == model


async def grpc_stream(clients: Clients, model: str, images: Images) -> bool:
    frames = [
        pb.StreamFrame(frame_id=1, image=images.png, model=model),
        pb.StreamFrame(frame_id=2, image=b"not an image"),
        pb.StreamFrame(frame_id=3, image=images.jpeg),
    ]
    outcomes = [r.WhichOneof("outcome") async for r in clients.stub.SegmentStream(frames)]
    return outcomes == ["result", "error", "result"]


async def grpc_refusal(clients: Clients, model: str, images: Images) -> bool:
    try:
        await clients.stub.Segment(pb.SegmentRequest(model="nope", image=images.png), timeout=60)
    except grpc.aio.AioRpcError as error:
        return error.code() is grpc.StatusCode.NOT_FOUND
    return False


async def oip_infer(clients: Clients, model: str, images: Images) -> bool:
    data = pack_bytes([images.png])
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "IMAGE",
                    "datatype": "BYTES",
                    "shape": [1],
                    "parameters": {"binary_data_size": len(data)},
                }
            ],
            "parameters": {"binary_data_output": True},
        }
    ).encode()
    headers = {"Inference-Header-Content-Length": str(len(header))}
    return await _post(
        clients, f"/v2/models/{model}/infer", 200, data=header + data, headers=headers
    )


KINDS: dict[str, Kind] = {
    "rest_png": rest_png,
    "rest_multipart_options": rest_multipart_options,
    "rest_refusals": rest_refusals,
    "grpc_segment": grpc_segment,
    "grpc_stream": grpc_stream,
    "grpc_refusal": grpc_refusal,
    "oip_infer": oip_infer,
}


@dataclass
class Soak:
    """What one soak run saw; ``samples`` are (seconds since start, RSS bytes, requests)."""

    pid: int
    started: float = field(default_factory=time.monotonic)
    done: Counter[str] = field(default_factory=Counter)
    wrong: Counter[str] = field(default_factory=Counter)
    samples: list[tuple[float, int, int]] = field(default_factory=list)
    warm_index: int | None = None  # first sample after warm-up
    first_wrong: str = ""

    def sample(self) -> None:
        now = time.monotonic() - self.started
        if not self.samples or now - self.samples[-1][0] >= SAMPLE_EVERY_S:
            self.samples.append((now, rss_bytes(self.pid), sum(self.done.values())))

    @property
    def baseline(self) -> float:
        assert self.warm_index is not None
        return statistics.median(s[1] for s in self.samples[self.warm_index :][:MEDIAN_OF])

    @property
    def final(self) -> float:
        return statistics.median(s[1] for s in self.samples[-MEDIAN_OF:])

    @property
    def growth(self) -> float:
        return self.final / self.baseline - 1.0

    def throughput(self) -> float:
        """Requests (of every kind) per second after warm-up."""
        assert self.warm_index is not None
        (t0, _, n0), (t1, _, n1) = self.samples[self.warm_index], self.samples[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else float("nan")


async def soak(
    clients: Clients,
    pid: int,
    model: str,
    images: Images,
    *,
    warmup_s: float,
    duration_s: float,
    concurrency: int = 4,
    on_sample: Callable[[Soak], None] | None = None,
) -> Soak:
    """``concurrency`` closed loops cycle through :data:`KINDS` (each from its own offset).
    Warm-up lasts ``warmup_s`` and until every kind completed twice; the measured part then
    lasts ``duration_s`` and until ``MEDIAN_OF`` samples exist on each side."""
    run = Soak(pid)
    names = list(KINDS)

    def warmed() -> bool:
        elapsed = time.monotonic() - run.started
        return elapsed >= warmup_s and all(run.done[name] >= 2 for name in names)

    def finished() -> bool:
        if run.warm_index is None:
            return False
        measured = run.samples[run.warm_index :]
        long_enough = measured and measured[-1][0] - measured[0][0] >= duration_s
        return bool(long_enough) and len(measured) >= 2 * MEDIAN_OF

    async def loop(offset: int) -> None:
        for turn in range(offset, 1 << 62):
            name = names[turn % len(names)]
            try:
                ok = await KINDS[name](clients, model, images)
            except (aiohttp.ClientError, grpc.RpcError) as exc:
                ok, run.first_wrong = False, run.first_wrong or f"{name}: {exc!r}"
            run.done[name] += 1
            if not ok:
                run.wrong[name] += 1
                run.first_wrong = run.first_wrong or name
            count = len(run.samples)
            run.sample()
            if run.warm_index is None and warmed():
                run.warm_index = len(run.samples) - 1
            if on_sample is not None and len(run.samples) > count:
                on_sample(run)
            if finished():
                return

    await asyncio.gather(*(loop(i) for i in range(concurrency)))
    return run
