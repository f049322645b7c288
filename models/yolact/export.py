"""Export a :class:`Yolact` to ONNX up to its raw heads (see docs: reference §9, §10).

The graph holds backbone → FPN → protonet + prediction head only; priors, decoding,
Fast NMS and mask assembly stay in our own torch code (:class:`YolactPostprocess`), as
every working YOLACT port does. Graph contract:

* input ``images`` [B, 3, S, S] (S = ``max_size``; batch is the only dynamic axis), in
  float32, or float16 for an ``fp16`` export (``model.half()``; the caller casts the
  preprocessed batch, exactly as the eager predictor does);
* outputs, always float32 (cast inside the graph, so detection runs in float32 as in
  :meth:`YolactPredictor.forward`): ``loc`` [B,P,4], ``conf`` [B,P,C+1] *after softmax*,
  ``coeffs`` [B,P,k], ``proto`` [B,h,w,k], and the constant ``priors`` [P,4];
* ``metadata_props``: family, class names, input size, the full config (config_io's
  dict, as JSON) and the producer, so a backend can be rebuilt from the file alone.

Exporter: the TorchScript exporter (``dynamo=False``, default opset 17) for plain convs;
YOLACT++ configs with deformable convs need the dynamo exporter at opset ≥ 19, which
maps ``torchvision.ops.deform_conv2d`` onto ONNX ``DeformConv``. YOLACT++'s mask
re-scoring net runs on assembled masks, after the heads, so it goes to a second small
graph beside the first (:func:`maskiou_path`), with a dynamic detection axis.
"""

from __future__ import annotations

import copy
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from maskserve.models.onnxrt.metadata import base_metadata, write_metadata
from maskserve.models.yolact.config import YolactConfig
from maskserve.models.yolact.config_io import config_to_dict
from maskserve.models.yolact.network import Yolact

log = logging.getLogger(__name__)

INPUT_NAME = "images"
OUTPUT_NAMES = ("loc", "conf", "coeffs", "proto", "priors")
MASKIOU_INPUT = "masks"
MASKIOU_OUTPUT = "maskiou"
FAMILY = "yolact"
PLAIN_OPSET = 17
DEFORM_OPSET = 19


@dataclass
class ExportResult:
    """What :func:`export_yolact` wrote and how well ONNX Runtime reproduces eager."""

    path: Path
    exporter: str  # "torchscript" or "dynamo"
    opset: int
    dtype: str  # the graph's input dtype: "float32" or "float16"
    maskiou_path: Path | None = None
    max_abs_diff: dict[str, float] = field(default_factory=dict)


class HeadsGraph(nn.Module):
    """What the ONNX graph computes: float32 raw heads (softmaxed conf) plus the priors."""

    def __init__(self, model: Yolact, priors: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("priors", priors.float().clone())

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        loc, conf, coeffs, proto, _ = self.model.forward_heads(images)
        conf = torch.softmax(conf.float(), dim=-1)
        return loc.float(), conf, coeffs.float(), proto.float(), self.priors


class MaskIoUGraph(nn.Module):
    """YOLACT++ re-scoring: cropped soft masks [N, 1, h, w] → per-class IoU [N, C] float32."""

    def __init__(self, model: Yolact) -> None:
        super().__init__()
        self.net = model.maskiou_net

    def forward(self, masks: torch.Tensor) -> torch.Tensor:
        return self.net(masks).float()


def has_deformable(config: YolactConfig) -> bool:
    """Whether the backbone has modulated deformable convs (YOLACT++)."""
    return any(n > 0 for n in config.backbone.deform_layers)


def choose_exporter(config: YolactConfig, opset: int | None = None) -> tuple[bool, int]:
    """(use dynamo, opset) for ``config``; a forced opset too low for DeformConv is an error."""
    if not has_deformable(config):
        return False, opset or PLAIN_OPSET
    if opset is not None and opset < DEFORM_OPSET:
        raise ValueError(
            f"config {config.name!r} has deformable convs, which ONNX has only from opset "
            f"{DEFORM_OPSET} (DeformConv, dynamo exporter); got --opset {opset}"
        )
    return True, opset or DEFORM_OPSET


def maskiou_path(path: Path | str) -> Path:
    """Where the mask re-scoring graph lives beside ``path`` (``x.onnx`` → ``x.maskiou.onnx``)."""
    path = Path(path)
    return path.with_name(f"{path.stem}.maskiou.onnx")


def probe_shapes(model: Yolact) -> tuple[torch.Tensor, tuple[int, int]]:
    """Priors [P, 4] for the square ``max_size`` input and the proto size (h, w).

    Both follow from the config and the input size alone; one forward at batch 1 reads
    the level sizes the network really produces.
    """
    size = model.config.max_size
    param = next(model.parameters())
    with torch.inference_mode():
        _, _, _, proto, levels = model.forward_heads(param.new_zeros((1, 3, size, size)))
    sizes = [(int(x.shape[-2]), int(x.shape[-1])) for x in levels]
    priors = model.priors_for(sizes, torch.device("cpu")).clone()
    return priors, (int(proto.shape[1]), int(proto.shape[2]))


def build_metadata(
    config: YolactConfig, dtype: torch.dtype, exporter: str, opset: int
) -> dict[str, str]:
    """``metadata_props`` of an exported YOLACT graph."""
    return {
        **base_metadata(FAMILY, config.class_names, config_to_dict(config), config.name, exporter),
        "input_size": str(config.max_size),
        "dtype": str(dtype).removeprefix("torch."),
        "outputs": ",".join(OUTPUT_NAMES),
        # YOLACT++ re-scoring lives in a second graph, named by maskiou_path(this file).
        "maskiou_graph": "beside" if config.use_maskiou else "none",
    }


def _export_graph(
    module: nn.Module,
    example: torch.Tensor,
    path: Path,
    names: tuple[list[str], list[str]],
    dynamo: bool,
    opset: int,
) -> None:
    """One ``torch.onnx.export`` with a dynamic axis 0 on the input and batched outputs."""
    inputs, outputs = names
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # TracerWarnings about the constant priors
        if dynamo:
            batch = torch.export.Dim("batch", min=1, max=4096)
            program = torch.onnx.export(
                module,
                (example,),
                None,
                dynamo=True,
                opset_version=opset,
                input_names=inputs,
                output_names=outputs,
                dynamic_shapes=({0: batch},),
                verbose=False,
            )
            program.save(str(path))
            return
        axes = {n: {0: "batch"} for n in inputs + outputs if n != "priors"}
        torch.onnx.export(
            module,
            (example,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=inputs,
            output_names=outputs,
            dynamic_axes=axes,
        )


def export_yolact(
    model: Yolact,
    path: Path | str,
    opset: int | None = None,
    fp16: bool = False,
    verify: bool = True,
) -> ExportResult:
    """Export ``model`` (left untouched) to ``path``; check it and, if ``verify``, compare.

    Exports on the CPU from a float32 or float16 copy. With ``use_maskiou`` the re-scoring
    net goes to :func:`maskiou_path` as well. ``verify`` runs eager and ONNX Runtime on
    seeded random batches of 2 and records the max abs difference of every output.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    dynamo, opset = choose_exporter(model.config, opset)
    exporter = "dynamo" if dynamo else "torchscript"
    dtype = torch.float16 if fp16 else torch.float32
    work = copy.deepcopy(model).cpu().eval().to(dtype)
    priors, proto_hw = probe_shapes(work)
    size = work.config.max_size
    example = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    heads = HeadsGraph(work, priors).eval()
    log.info("exporting %s to %s (%s exporter, opset %d)", model.config.name, path, exporter, opset)
    _export_graph(heads, example.to(dtype), path, ([INPUT_NAME], list(OUTPUT_NAMES)), dynamo, opset)
    write_metadata(path, build_metadata(work.config, dtype, exporter, opset))
    result = ExportResult(path=path, exporter=exporter, opset=opset, dtype=_name(dtype))
    if work.config.use_maskiou:
        result.maskiou_path = maskiou_path(path)
        _export_maskiou(work, result.maskiou_path, proto_hw, opset)
    if verify:
        result.max_abs_diff = verify_export(work, path)
    return result


def _export_maskiou(model: Yolact, path: Path, proto_hw: tuple[int, int], opset: int) -> None:
    """The re-scoring net (plain convs: the TorchScript exporter is enough)."""
    dtype = next(model.parameters()).dtype
    masks = torch.rand(3, 1, *proto_hw, generator=torch.Generator().manual_seed(1))
    graph = MaskIoUGraph(model).eval()
    _export_graph(graph, masks.to(dtype), path, ([MASKIOU_INPUT], [MASKIOU_OUTPUT]), False, opset)
    write_metadata(path, {"maskserve_family": FAMILY, "role": "maskiou", "dtype": _name(dtype)})


def verify_export(
    model: Yolact, path: Path | str, batch: int = 2, seed: int = 0
) -> dict[str, float]:
    """Max abs difference per output between eager ``model`` and ONNX Runtime on ``path``.

    The input is seeded noise at the graph's dtype (the model's parameters' dtype).
    The re-scoring graph, if any, is compared on seeded soft masks as ``maskiou``.
    """
    from maskserve.models.onnxrt.session import OrtRunner

    path = Path(path)
    dtype = next(model.parameters()).dtype
    model = model.cpu().eval()
    size = model.config.max_size
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(batch, 3, size, size, generator=gen).to(dtype)
    with torch.inference_mode():
        eager = HeadsGraph(model, probe_shapes(model)[0])(images)
    got = OrtRunner(path, "cpu").run({INPUT_NAME: images})
    diffs = {n: _max_diff(e, got[n]) for n, e in zip(OUTPUT_NAMES, eager, strict=True)}
    if model.config.use_maskiou:
        side = maskiou_path(path)
        with torch.inference_mode():
            proto_hw = tuple(eager[3].shape[1:3])
            masks = torch.rand(3, 1, *proto_hw, generator=gen).to(dtype)
            want = MaskIoUGraph(model)(masks)
        got_iou = OrtRunner(side, "cpu").run({MASKIOU_INPUT: masks})[MASKIOU_OUTPUT]
        diffs[MASKIOU_OUTPUT] = _max_diff(want, got_iou)
    return diffs


def _max_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    if a.shape != b.shape:
        raise AssertionError(f"shape mismatch: eager {tuple(a.shape)} vs onnx {tuple(b.shape)}")
    return float((a.float() - b.float()).abs().max()) if a.numel() else 0.0


def _name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
