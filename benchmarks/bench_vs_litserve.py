"""maskserve vs a hand-written LitServe server, same Mask R-CNN R50-FPN ``.pth``, over HTTP.

Usage (``pip install -e '.[bench]'`` brings LitServe)::

    .venv/bin/python benchmarks/bench_vs_litserve.py [--concurrency 1,8] [--rounds 3]
        [--requests 24] [--maskserve-folder DIR]

The checkpoint: torchvision's ``maskrcnn_resnet50_fpn(weights=None, num_classes=91)``
after ``torch.manual_seed(0)``, saved with ``torch.save(model.state_dict())``.  Random
weights score every class alike, so both servers keep every candidate (score threshold 0)
and return the top 20 detections per image, each with its mask as COCO RLE.

* LitServe: ``benchmarks/litserve/maskrcnn_app.py`` (batching on: ``max_batch_size=8``,
  ``batch_timeout=5 ms``; JSON with a base64 image, as its docs show), one worker.
* maskserve: ``maskserve serve`` on a model folder for the same file (``[maskrcnn]``
  ``config = "maskrcnn_resnet50_fpn"``, the same thresholds), its defaults otherwise;
  with ``--dtype bfloat16``, its backbone + FPN in bf16 (RPN and heads stay fp32);
  with ``--int8``, the folder that ``maskserve export --int8`` makes of it (convolutions
  in int8 on ONNX Runtime; the accuracy cost is measured on the shipped models).

Both servers run at the same time on 127.0.0.1 (idle while the other is measured).  For
each concurrency, rounds alternate the two (order rotating); each round is a closed loop
of ``--requests`` requests after a warm-up.  Printed: the median throughput over rounds,
p50/p99 over all measured requests, and maskserve's throughput ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import statistics
import sys
import tempfile
from pathlib import Path

import aiohttp
import numpy as np
import torch
from PIL import Image
from serving_harness import ServerProcess, Window, drive, rest_sender
from torchvision.models.detection import maskrcnn_resnet50_fpn

from maskserve.cli import main as maskserve_main
from maskserve.models.synthetic.generator import generate_sample
from maskserve.models.tomlwrite import dumps

APP = Path(__file__).resolve().parent / "litserve" / "maskrcnn_app.py"
DETECTIONS = 20


class LitServeProcess(ServerProcess):
    ready_path = "/health"

    def __init__(self, weights: Path, log_path: Path) -> None:
        super().__init__({}, log_path)
        self.command = [
            sys.executable,
            str(APP),
            "--weights",
            str(weights),
            "--port",
            str(self.http_port),
            "--detections",
            str(DETECTIONS),
        ]


def make_checkpoint(path: Path) -> None:
    torch.manual_seed(0)
    model = maskrcnn_resnet50_fpn(weights=None, weights_backbone=None, num_classes=91)
    torch.save(model.state_dict(), path)


def model_folder(root: Path, weights: Path) -> Path:
    folder = root / "r50"
    folder.mkdir()
    # a hard link, not a symlink: maskserve refuses weights that lead outside its repository
    os.link(weights, folder / weights.name)
    table = {
        "family": "maskrcnn",
        "weights": weights.name,
        "score_threshold": 0.0,
        "maskrcnn": {
            "config": "maskrcnn_resnet50_fpn",
            "batchnorm_eps": 1e-5,  # torchvision's eps when weights=None (LitServe's side)
            "box_score_thresh": 0.0,
            "detections_per_img": DETECTIONS,
        },
    }
    (folder / "model.toml").write_text(dumps(table))
    return folder


def jpegs(count: int) -> list[bytes]:
    rng = np.random.default_rng(0)
    blobs = []
    for _ in range(count):
        out = io.BytesIO()
        Image.fromarray(generate_sample(rng, 480, 640).image).save(out, "JPEG", quality=90)
        blobs.append(out.getvalue())
    return blobs


def litserve_sender(client: aiohttp.ClientSession, blobs: list[bytes]):
    bodies = [{"image": base64.b64encode(b).decode()} for b in blobs]

    async def send(number: int) -> dict[str, float] | str:
        try:
            async with client.post("/predict", json=bodies[number % len(bodies)]) as reply:
                if reply.status != 200:
                    return f"HTTP {reply.status}: {await reply.text()}"
                await reply.json()
        except aiohttp.ClientError as exc:
            return f"{type(exc).__name__}: {exc}"
        return {}

    return send


async def measure(servers: dict[str, ServerProcess], blobs: list[bytes], args) -> dict:
    results: dict[tuple[str, int], list[Window]] = {}
    sessions = {
        name: aiohttp.ClientSession(server.url, timeout=aiohttp.ClientTimeout(total=300))
        for name, server in servers.items()
    }
    try:
        senders = {
            "maskserve": rest_sender(
                sessions["maskserve"], "r50", [(b, "image/jpeg") for b in blobs]
            ),
            "litserve": litserve_sender(sessions["litserve"], blobs),
        }
        for concurrency in args.concurrency:
            names = list(senders)
            for number in range(args.rounds):
                for name in names[number % 2 :] + names[: number % 2]:
                    window = await drive(
                        senders[name],
                        concurrency,
                        concurrency,
                        args.requests,
                        None,
                        servers[name].pid,
                    )
                    results.setdefault((name, concurrency), []).append(window)
                    print(
                        f"  c={concurrency} round {number} {name}: "
                        f"{args.requests / window.seconds:.2f} img/s, errors {window.errors}",
                        flush=True,
                    )
    finally:
        for session in sessions.values():
            await session.close()
    return results


def report(results: dict, args) -> None:
    print(
        "\n## Mask R-CNN R50-FPN (.pth, random weights, 20 detections/image), "
        "480x640 JPEG over HTTP, interleaved rounds\n"
    )
    print(
        "| server | concurrency | img/s (median of rounds) | p50 ms | p99 ms | errors "
        "| maskserve / LitServe |"
    )
    print("|---|---|---|---|---|---|---|")
    for concurrency in args.concurrency:
        rates = {}
        for name in ("litserve", "maskserve"):
            windows = results[(name, concurrency)]
            rates[name] = statistics.median(args.requests / w.seconds for w in windows)
            latencies = np.array([lat for w in windows for lat in w.latencies]) * 1e3
            errors = sum(w.errors for w in windows)
            ratio = f"{rates['maskserve'] / rates['litserve']:.2f}×" if name == "maskserve" else ""
            print(
                f"| {name} | {concurrency} | {rates[name]:.2f} | "
                f"{np.percentile(latencies, 50):.0f} | {np.percentile(latencies, 99):.0f} "
                f"| {errors} | {ratio} |"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concurrency", default="1,8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument(
        "--int8", action="store_true", help="serve maskserve's `export --int8` of the checkpoint"
    )
    parser.add_argument(
        "--dtype", default="float32", help="maskserve's dtype setting (bfloat16: the backbone)"
    )
    args = parser.parse_args(argv)
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    blobs = jpegs(4)
    with tempfile.TemporaryDirectory(prefix="bench_litserve_") as temp:
        root = Path(temp)
        weights = root / "maskrcnn_r50_fpn_random.pth"
        make_checkpoint(weights)
        repo = root / "repo"
        repo.mkdir()
        model_folder(repo, weights)
        if args.int8:  # the same checkpoint and thresholds, convolutions in int8 (ONNX Runtime)
            exported = root / "int8"
            maskserve_main(
                [
                    "export",
                    "--model",
                    "r50",
                    "--model-repository",
                    str(repo),
                    "--model-folder",
                    str(exported / "r50"),
                    "--int8",
                ]
            )
            repo = exported
        # a 2-core CPU needs ~4 s per image at 800 px: at concurrency 8 a request waits
        # ~30 s, so both servers get a 300 s request timeout instead of their 30 s default
        flags = {
            "model-repository": repo,
            "models": "r50",
            "request-timeout-s": 300,
            "dtype": args.dtype,
        }
        with (
            ServerProcess(flags, root / "maskserve.log") as ours,
            LitServeProcess(weights, root / "litserve.log") as theirs,
        ):
            servers = {"maskserve": ours, "litserve": theirs}
            results = asyncio.run(measure(servers, blobs, args))
    report(results, args)


if __name__ == "__main__":
    main()
