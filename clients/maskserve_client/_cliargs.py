"""Argument types and options shared by the CLI's commands."""

from __future__ import annotations

import argparse

from maskserve_client.types import DEFAULT_MODEL


def unit_interval(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def class_ids(text: str) -> list[int]:
    """``"0,2,5"`` → ``[0, 2, 5]``."""
    try:
        ids = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated class ids, got {text!r}"
        ) from None
    if not ids or min(ids) < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative class ids, got {text!r}")
    return ids


def add_options(parser: argparse.ArgumentParser) -> None:
    """Model and per-request options, the same for both commands."""
    parser.add_argument("--model", default=DEFAULT_MODEL, help="model name (default %(default)s)")
    parser.add_argument(
        "--score-threshold",
        type=unit_interval,
        metavar="X",
        help="keep detections scoring above this (default: the model's)",
    )
    parser.add_argument(
        "--max-detections",
        metavar="N",
        type=positive_int,
        help="at most this many per image (default: the model's)",
    )
    parser.add_argument(
        "--classes",
        type=class_ids,
        metavar="IDS",
        help="keep only these class ids, comma-separated (e.g. 0,2)",
    )
