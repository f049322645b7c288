"""The command-line flags both trainers share, with their help texts."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_training_arguments(
    parser: argparse.ArgumentParser,
    *,
    out: str,
    iterations: int,
    batch_size: int,
    lr: float,
    warmup: int,
    log_every: int,
    checkpoint_every: int,
) -> None:
    add = parser.add_argument
    add("--out", default=out, help=f"model folder to write (default {out})")
    add("--iterations", type=int, default=iterations, help="optimiser steps")
    add("--batch-size", type=int, default=batch_size, help="synthetic images per step")
    add("--lr", type=float, default=lr, help="peak learning rate")
    add("--warmup", type=int, default=warmup, help="steps of linear learning-rate warm-up")
    add("--seed", type=int, default=0, help="seed of the synthetic data and the init")
    add("--init", type=Path, help="start from these weights (resume a run)")
    add("--bf16", action="store_true", help="bfloat16 autocast (faster on AVX512-BF16 CPUs)")
    add("--threads", type=int, default=2, help="torch intra-op threads")
    add("--log-every", type=int, default=log_every, help="log the losses every N steps")
    add(
        "--checkpoint-every",
        type=int,
        default=checkpoint_every,
        help="write the model folder every N steps",
    )
