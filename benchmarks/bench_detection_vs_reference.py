"""The detection step (box decoding + Fast NMS) of dbolya/yolact vs maskserve's, on the
same head outputs.

Usage::

    .venv/bin/python benchmarks/bench_detection_vs_reference.py \\
        --reference-dir /tmp/yolact_ref [--config yolact_resnet50] [--rounds 20]

The reference copy is prepared as for ``bench_vs_reference.py`` (same patch, same
seeded checkpoint, ``conf_thresh`` 0, ``top_k`` 200, 100 detections). Its network runs once
on a synthetic 480×640 photo with its ``Detect`` layer wrapped to keep what it receives
(softmaxed ``conf``, ``loc``, mask coefficients, priors). Then each round times the
reference's ``Detect`` and maskserve's ``detect_image`` on those same tensors, order
alternating, and checks that both keep the same boxes.
"""

from __future__ import annotations

import argparse
import io
import tempfile
from pathlib import Path

import numpy as np
import torch
from bench_vs_reference import TOP_K, Reference, patched_copy
from interleaved import median_lines, timed_rounds
from PIL import Image

from maskserve.models.synthetic.generator import generate_sample
from maskserve.models.yolact.detect import detect_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference-dir", type=Path, required=True)
    parser.add_argument("--config", default="yolact_resnet50")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    buffer = io.BytesIO()
    sample = generate_sample(np.random.default_rng(0), 480, 640).image
    Image.fromarray(sample).save(buffer, "JPEG", quality=90)
    with tempfile.TemporaryDirectory(prefix="bench_detect_") as temp:
        root = Path(temp)
        reference = Reference(
            patched_copy(args.reference_dir, root / "yolact"),
            args.config,
            root / "checkpoint.pth",
        )
        detect = reference.net.detect
        seen: dict = {}
        original = detect.__call__

        def keep(predictions: dict, net: object) -> object:
            seen.update({k: v.clone() for k, v in predictions.items() if k != "proto"})
            seen["proto"] = predictions["proto"]
            return original(predictions, net)

        reference.net.detect = keep  # type: ignore[assignment]
        reference(buffer.getvalue())
        reference.net.detect = detect

        def theirs() -> torch.Tensor:
            found = detect({**seen}, reference.net)
            return found[0]["detection"]["box"]

        def ours() -> torch.Tensor:
            found = detect_image(
                seen["loc"][0],
                seen["conf"][0],
                seen["mask"][0],
                seen["priors"],
                conf_thresh=0.0,
                nms_thresh=0.5,
                top_k=200,
                max_detections=TOP_K,
            )
            return found.boxes

        def same(boxes: dict[str, torch.Tensor]) -> None:
            mine, expected = boxes["maskserve detect_image"], boxes["reference Detect"]
            assert mine.shape == expected.shape and torch.allclose(mine, expected, atol=1e-5)

        runs = {"reference Detect": theirs, "maskserve detect_image": ours}
        with torch.inference_mode():
            times = timed_rounds(runs, args.rounds, same)
    print(
        f"{len(seen['priors'])} priors, {args.threads} threads, {args.rounds} rounds; "
        "the same boxes kept in every round"
    )
    print("\n".join(median_lines(times, "reference Detect")))


if __name__ == "__main__":
    main()
