"""CLI: ``python -m maskserve.models.synthetic --out DIR --num N --seed S --size 320x320``."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from maskserve.models.synthetic.coco import write_coco_dataset


def _size(text: str) -> tuple[int, int]:
    """Parses ``WIDTHxHEIGHT`` into (height, width)."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from exc
    if width <= 0 or height <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return height, width


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m maskserve.models.synthetic",
        description="Write a synthetic shapes data set in COCO instance-segmentation format.",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--num", type=int, required=True, help="number of images")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument(
        "--size", type=_size, default=(320, 320), help="WIDTHxHEIGHT (default 320x320)"
    )
    args = parser.parse_args(argv)
    height, width = args.size
    path = write_coco_dataset(args.out, args.num, args.seed, height, width)
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
