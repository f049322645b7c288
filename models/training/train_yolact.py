"""Train the shipped YOLACT on synthetic shapes (seeded, CPU-friendly).

    python -m maskserve.models.training.train_yolact --iterations 3000

Writes ``weights.safetensors`` and ``model.toml`` into ``--out`` and logs one line per
``--log-every`` iterations. Samples are generated on the fly from a seeded generator, at
random sizes and aspect ratios, and stretched to the network input exactly as at
inference.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from maskserve.models.synthetic import SHAPE_CLASSES, generate_sample
from maskserve.models.synthetic.generator import Sample
from maskserve.models.tomlwrite import dumps
from maskserve.models.training.arguments import add_training_arguments
from maskserve.models.training.yolact_loss import Target, yolact_loss
from maskserve.models.yolact.checkpoint import read_state_dict, save_safetensors
from maskserve.models.yolact.config import BackboneConfig, YolactConfig
from maskserve.models.yolact.config_io import config_to_dict
from maskserve.models.yolact.network import RawOutputs, Yolact
from maskserve.models.yolact.preprocess import preprocess_images
from maskserve.progress import Progress

log = logging.getLogger("train_yolact")
SERVED_SCORE_THRESHOLD = 0.3  # the server's default for requests that name none


def shapes_config() -> YolactConfig:
    """The shipped model: a slim ResNet-18 layout at 320 px, 3 true-rectangle anchors/level."""
    return YolactConfig(
        name="yolact_shapes_r18",
        backbone=BackboneConfig(
            kind="resnet",
            layers=(2, 2, 2, 2),
            widths=(32, 64, 128, 256),
            bottleneck=False,
            stem_width=32,
        ),
        max_size=320,
        class_names=SHAPE_CLASSES,
        fpn_channels=96,
        proto_channels=96,
        head_channels=96,
        anchor_scales=((12.0,), (24.0,), (48.0,), (96.0,), (192.0,)),
        square_anchors=False,
        has_semantic_seg=False,
    )


def random_size(rng: np.random.Generator) -> tuple[int, int]:
    """Training image sizes: 240–480 px wide, aspect 0.6–1.6."""
    width = int(rng.integers(240, 481))
    height = int(np.clip(width / rng.uniform(0.6, 1.6), 200, 520))
    return height, width


def to_target(sample: Sample, proto_size: int) -> Target:
    height, width = sample.image.shape[:2]
    scale = torch.tensor([width, height, width, height], dtype=torch.float32)
    masks = torch.from_numpy(sample.masks).float()[None]
    small = F.interpolate(masks, (proto_size, proto_size), mode="bilinear", align_corners=False)
    return Target(
        boxes=torch.from_numpy(sample.boxes).float() / scale,
        labels=torch.from_numpy(sample.class_ids),
        masks=(small[0] > 0.5).float(),
    )


def as_float32(raw: RawOutputs) -> RawOutputs:
    """The heads' outputs in float32, so the loss never runs in bfloat16."""
    return RawOutputs(
        raw.loc.float(), raw.conf.float(), raw.coeffs.float(), raw.proto.float(), raw.priors
    )


def learning_rate(step: int, total: int, peak: float, warmup: int) -> float:
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * 0.5 * (1 + math.cos(math.pi * progress))


def train(args: argparse.Namespace) -> Yolact:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    config = shapes_config()
    model = Yolact(config)
    if args.init is not None:
        model.load_state_dict(read_state_dict(args.init))
        log.info("initialised from %s", args.init)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    proto_size = config.max_size // 4
    device = torch.device("cpu")
    started = time.perf_counter()
    progress = Progress("train", args.iterations)
    for step in range(args.iterations):
        progress.advance()
        samples = [generate_sample(rng, *random_size(rng)) for _ in range(args.batch_size)]
        images = preprocess_images([s.image for s in samples], config, device)
        targets = [to_target(s, proto_size) for s in samples]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.iterations, args.lr, args.warmup)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            raw = model(images)
        losses = yolact_loss(as_float32(raw), targets)
        total = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        if step % args.log_every == 0 or step == args.iterations - 1:
            parts = " ".join(f"{k}={v.item():.3f}" for k, v in losses.items())
            elapsed = time.perf_counter() - started
            log.info(
                "step %d/%d %s lr=%.2e %.0fs",
                step,
                args.iterations,
                parts,
                optimizer.param_groups[0]["lr"],
                elapsed,
            )
        if args.checkpoint_every and step and step % args.checkpoint_every == 0:
            write_model(model, Path(args.out))
    return model.eval()


def write_model(model: Yolact, out: Path) -> None:
    """``weights.safetensors`` plus ``model.toml`` (family, weights, config as data)."""
    out.mkdir(parents=True, exist_ok=True)
    save_safetensors(model, out / "weights.safetensors")
    description = {
        "family": "yolact",
        "weights": "weights.safetensors",
        "description": "YOLACT (slim ResNet-18, 320 px) trained on maskserve's synthetic shapes",
        "score_threshold": SERVED_SCORE_THRESHOLD,
        "yolact": config_to_dict(model.config),
    }
    (out / "model.toml").write_text(dumps(description))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_training_arguments(
        parser,
        out="models/zoo/yolact_shapes",
        iterations=3000,
        batch_size=8,
        lr=2e-3,
        warmup=200,
        log_every=20,
        checkpoint_every=250,
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    write_model(train(args), Path(args.out))


if __name__ == "__main__":
    main()
