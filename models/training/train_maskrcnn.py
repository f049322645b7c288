"""Train the shipped Mask R-CNN (slim ResNet-18-FPN) on synthetic shapes (seeded, CPU).

    python -m maskserve.models.training.train_maskrcnn --iterations 2000 \
        --backbone-from models/zoo/yolact_shapes/weights.safetensors

torchvision's ``MaskRCNN`` with maskserve's slim ResNet-18 layout under an FPN and narrow
heads. ``--backbone-from`` initialises the ResNet body from the shipped YOLACT, which
learnt the same synthetic world (the only "pretraining" available offline). Writes
``weights.safetensors`` + ``model.toml`` into ``--out``.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from torchvision.models.detection import MaskRCNN

from maskserve.models.maskrcnn.config import MaskRcnnConfig, config_to_dict
from maskserve.models.maskrcnn.network import build_maskrcnn
from maskserve.models.synthetic import SHAPE_CLASSES, generate_sample
from maskserve.models.synthetic.generator import Sample
from maskserve.models.tomlwrite import dumps
from maskserve.models.training.arguments import add_training_arguments
from maskserve.models.training.train_yolact import learning_rate, random_size, shapes_config
from maskserve.models.yolact.checkpoint import read_state_dict
from maskserve.progress import Progress

log = logging.getLogger("train_maskrcnn")
SERVED_SCORE_THRESHOLD = 0.5
TRAIN_SETTINGS = {
    "rpn_pre_nms_top_n_train": 1000,
    "rpn_post_nms_top_n_train": 500,
    "box_batch_size_per_image": 128,
}


def shapes_maskrcnn_config() -> MaskRcnnConfig:
    """The shipped model: slim ResNet-18-FPN (96 channels), 320–512 px inputs."""
    return MaskRcnnConfig(
        name="maskrcnn_shapes_r18",
        arch="slim_resnet_fpn",
        class_names=SHAPE_CLASSES,
        min_size=320,
        max_size=512,
        rpn_pre_nms_top_n_test=500,
        rpn_post_nms_top_n_test=300,
        backbone=shapes_config().backbone,
        fpn_channels=96,
        anchor_sizes=(16, 32, 64, 128, 256),
        representation_size=256,
        mask_head_channels=(96, 96, 96, 96),
    )


def to_target(sample: Sample) -> dict[str, torch.Tensor]:
    return {
        "boxes": torch.from_numpy(sample.boxes).float(),
        "labels": torch.from_numpy(sample.class_ids) + 1,
        "masks": torch.from_numpy(sample.masks.astype(np.uint8)),
    }


def init_backbone(model: MaskRCNN, yolact_weights: Path) -> None:
    """Copy the YOLACT backbone's tensors into ``backbone.body`` (same layout and names)."""
    state = read_state_dict(yolact_weights)
    body = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    model.backbone.body.load_state_dict(body)
    log.info("backbone initialised from %s (%d tensors)", yolact_weights, len(body))


def train(args: argparse.Namespace) -> MaskRCNN:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = build_maskrcnn(shapes_maskrcnn_config(), **TRAIN_SETTINGS)
    if args.init is not None:
        model.load_state_dict(read_state_dict(args.init))
        log.info("initialised from %s", args.init)
    elif args.backbone_from is not None:
        init_backbone(model, args.backbone_from)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    started = time.perf_counter()
    progress = Progress("train", args.iterations)
    for step in range(args.iterations):
        progress.advance()
        samples = [generate_sample(rng, *random_size(rng)) for _ in range(args.batch_size)]
        images = [torch.from_numpy(s.image).permute(2, 0, 1).float() / 255.0 for s in samples]
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.iterations, args.lr, args.warmup)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            losses = model(images, [to_target(s) for s in samples])
        total = sum(v.float() for v in losses.values())
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        if step % args.log_every == 0 or step == args.iterations - 1:
            parts = " ".join(f"{k.removeprefix('loss_')}={v.item():.3f}" for k, v in losses.items())
            log.info(
                "step %d/%d %s lr=%.2e %.0fs",
                step,
                args.iterations,
                parts,
                optimizer.param_groups[0]["lr"],
                time.perf_counter() - started,
            )
        if args.checkpoint_every and step and step % args.checkpoint_every == 0:
            write_model(model, Path(args.out))
    return model.eval()


def write_model(model: MaskRCNN, out: Path) -> None:
    """``weights.safetensors`` plus ``model.toml`` (family, weights, config as data)."""
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(tensors, str(out / "weights.safetensors"))
    description = {
        "family": "maskrcnn",
        "weights": "weights.safetensors",
        "description": "Mask R-CNN (slim ResNet-18-FPN, 320-512 px) trained on synthetic shapes",
        "score_threshold": SERVED_SCORE_THRESHOLD,
        "maskrcnn": config_to_dict(shapes_maskrcnn_config()),
    }
    (out / "model.toml").write_text(dumps(description))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_training_arguments(
        parser,
        out="models/zoo/maskrcnn_shapes",
        iterations=2000,
        batch_size=4,
        lr=5e-4,
        warmup=100,
        log_every=10,
        checkpoint_every=200,
    )
    parser.add_argument("--backbone-from", type=Path, help="YOLACT weights for the ResNet body")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(args.threads)
    write_model(train(args), Path(args.out))


if __name__ == "__main__":
    main()
