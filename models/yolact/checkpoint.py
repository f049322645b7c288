"""Loading and saving YOLACT weights.

Original ``.pth`` checkpoints load unchanged through ``torch.load(weights_only=True)``
(no arbitrary unpickling). The config is taken from the caller, else from the file name
(the reference's rule), else inferred from the keys and shapes; a mismatch fails with an
error naming the config tried and the first missing, unexpected and mis-shaped keys.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from maskserve.models.yolact.config import CONFIGS, YolactConfig, get_config
from maskserve.models.yolact.network import Yolact

log = logging.getLogger(__name__)

_OPTIONAL = re.compile(r"(^semantic_seg_conv\.|\.num_batches_tracked$)")
_OLD_BACKBONE = re.compile(r"^backbone\.layer(?!s\.)")
_EXTRA_DOWNSAMPLE = re.compile(r"^fpn\.downsample_layers\.(\d+)\.")
NUM_DOWNSAMPLE = 2


class CheckpointError(ValueError):
    """A checkpoint that does not fit the config it was loaded with."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.pth`` (weights only) or ``.safetensors`` file, on the CPU."""
    path = Path(path)
    if path.suffix == ".safetensors":
        return load_file(str(path), device="cpu")
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or not all(
        isinstance(v, torch.Tensor) for v in payload.values()
    ):
        raise CheckpointError(f"{path} is not a flat state_dict of tensors")
    return dict(payload)


def clean_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop what the reference loader drops: old backbone names, extra downsample layers."""
    cleaned = {}
    for key, value in state.items():
        if _OLD_BACKBONE.match(key):
            continue
        extra = _EXTRA_DOWNSAMPLE.match(key)
        if extra and int(extra.group(1)) >= NUM_DOWNSAMPLE:
            continue
        cleaned[key] = value
    return cleaned


def expected_shapes(config: YolactConfig) -> dict[str, tuple[int, ...]]:
    """Every state_dict key of ``config``'s network and its shape (built on the meta device)."""
    with torch.device("meta"):
        model = Yolact(config)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def compare_keys(config: YolactConfig, state: dict[str, torch.Tensor]) -> dict[str, list[str]]:
    """Missing, unexpected and mis-shaped keys of ``state`` against ``config``."""
    return compare_shapes(expected_shapes(config), state)


def compare_shapes(
    expected: dict[str, tuple[int, ...]], state: dict[str, torch.Tensor]
) -> dict[str, list[str]]:
    """Missing, unexpected and mis-shaped keys of ``state`` against ``expected`` shapes
    (``num_batches_tracked`` buffers may be absent or extra)."""
    missing = [k for k in expected if k not in state and not _OPTIONAL.search(k)]
    unexpected = [k for k in state if k not in expected and not _OPTIONAL.search(k)]
    misshaped = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs config {expected[k]}"
        for k in expected
        if k in state and tuple(state[k].shape) != expected[k]
    ]
    return {"missing": missing, "unexpected": unexpected, "mis-shaped": misshaped}


def _with_class_count(config: YolactConfig, state: dict[str, torch.Tensor]) -> YolactConfig:
    """Adapt the class list when the checkpoint was trained on another number of classes."""
    conf = state.get("prediction_layers.0.conf_layer.weight")
    if conf is None or conf.shape[0] % config.priors_per_location:
        return config
    num_classes = conf.shape[0] // config.priors_per_location - 1
    if num_classes == config.num_classes or num_classes < 1:
        return config
    names = tuple(f"class_{i}" for i in range(num_classes))
    return replace(config, class_names=names)


def config_from_filename(path: str | Path) -> str | None:
    """The reference's rule: ``yolact_im700_54_800000.pth`` → ``yolact_im700``."""
    parts = Path(path).stem.split("_")
    name = "_".join(parts[:-2]) if len(parts) > 2 else ""
    return name if name in CONFIGS else None


def infer_config(state: dict[str, torch.Tensor], path: str | Path | None = None) -> YolactConfig:
    """The first registered config whose keys and shapes fit ``state``.

    Configs that differ only in input size (base, im400, im700) cannot be told apart by
    their weights; the file name decides between them, else the first registered wins.
    """
    named = config_from_filename(path) if path is not None else None
    order = ([named] if named else []) + [n for n in CONFIGS if n != named]
    for name in order:
        config = _with_class_count(CONFIGS[name], state)
        if not any(compare_keys(config, state).values()):
            return config
    raise CheckpointError(
        "no registered YOLACT config fits this checkpoint; tried "
        + ", ".join(order)
        + ". Closest: "
        + _mismatch_report(_closest(order, state), state)
    )


def _closest(names: list[str], state: dict[str, torch.Tensor]) -> YolactConfig:
    def distance(name: str) -> int:
        diff = compare_keys(_with_class_count(CONFIGS[name], state), state)
        return sum(len(v) for v in diff.values())

    return _with_class_count(CONFIGS[min(names, key=distance)], state)


def _mismatch_report(config: YolactConfig, state: dict[str, torch.Tensor]) -> str:
    diff = compare_keys(config, state)
    parts = [f"config {config.name!r}"]
    for kind, keys in diff.items():
        if keys:
            parts.append(f"{len(keys)} {kind} (first: {keys[0]})")
    return "; ".join(parts)


def build_model(config: YolactConfig, state: dict[str, torch.Tensor]) -> Yolact:
    """A network for ``config`` with ``state`` loaded, or a :class:`CheckpointError`."""
    if any(compare_keys(config, state).values()):
        raise CheckpointError("checkpoint does not match " + _mismatch_report(config, state))
    model = Yolact(config)
    result = model.load_state_dict(state, strict=False)
    leftover = [k for k in result.missing_keys if not _OPTIONAL.search(k)]
    if leftover:
        raise CheckpointError(f"keys not loaded for {config.name!r}: {leftover[:3]}")
    return model.eval()


def load_yolact(path: str | Path, config: YolactConfig | str | None = None) -> Yolact:
    """Load a checkpoint (original ``.pth`` or our ``.safetensors``) into a network."""
    state = clean_state_dict(read_state_dict(path))
    if config is None:
        chosen = infer_config(state, path)
        log.info("inferred YOLACT config %s for %s", chosen.name, path)
    else:
        chosen = get_config(config) if isinstance(config, str) else config
        chosen = _with_class_count(chosen, state)
    return build_model(chosen, state)


def save_original_format(model: Yolact, path: str | Path) -> None:
    """A flat state_dict ``.pth`` as the reference's training code writes."""
    torch.save(model.state_dict(), path)


def save_safetensors(model: Yolact, path: str | Path) -> None:
    """Weights as safetensors (the config travels beside them in ``model.toml``)."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(tensors, str(path), metadata={"config": model.config.name})
