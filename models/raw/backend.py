"""The ``raw`` family: an ONNX graph run on the tensors a client sends, batched.

A model folder either declares it outright::

    family = "raw"
    weights = "model.onnx"

    [raw]

or, for a model served through another family (an Ultralytics YOLO-seg export), says
``raw = true`` in its ``model.toml``: the repository then serves the same file a second
time as ``<name>_raw`` in this family (see :mod:`maskserve.repository`).

A batch from the server's batcher is a list of requests, each a mapping from input name to
an array whose first dimension is the request's own batch. When every tensor of the graph
has a free first dimension, consecutive requests with equal trailing shapes are stacked
into one run and the outputs split back; otherwise (a static batch, as Ultralytics
exports by default) each request runs alone, in the batch's order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from maskserve.models.base import ModelInfo
from maskserve.models.onnxrt.session import OrtRunner
from maskserve.models.raw.signature import TensorSignature, spec_of
from maskserve.models.registry import ModelSpec

Tensors = Mapping[str, np.ndarray]
FREE_DIM_WARMUP = 64
"""What a warm-up run puts in a free non-batch dimension (a free batch gets 1)."""


class RawTensorBackend:
    """One onnxruntime session on one device; requests of named arrays in and out."""

    def __init__(self, spec: ModelSpec, device: torch.device) -> None:
        self.runner = OrtRunner(spec.weights, device)
        session = self.runner.session
        self.signature = TensorSignature(
            inputs=tuple(spec_of(node) for node in session.get_inputs()),
            outputs=tuple(spec_of(node) for node in session.get_outputs()),
            metadata=dict(self.runner.metadata),
        )
        self.info = ModelInfo(
            name=spec.name,
            family="raw",
            class_names=(),
            input_size=0,
            device=str(device),
            dtype="onnx",
            extra={"weights": spec.weights.name, "batched": str(self.signature.batched)},
        )

    def warmup_input(self) -> dict[str, np.ndarray]:
        """Zeros of every input's shape (free dimensions filled in)."""
        feeds = {}
        for tensor in self.signature.inputs:
            shape = [
                (1 if axis == 0 else FREE_DIM_WARMUP) if dim == -1 else dim
                for axis, dim in enumerate(tensor.shape)
            ]
            feeds[tensor.name] = np.zeros(shape, dtype=tensor.dtype)
        return feeds

    def infer(self, requests: Sequence[Tensors], max_detections: int = 0) -> list[dict]:
        """Each request's outputs by name, in order (``max_detections`` is not used)."""
        results: list[dict[str, np.ndarray]] = []
        for group in self._groups(requests):
            outputs = self._run(_stack(group) if len(group) > 1 else group[0])
            if len(group) == 1:
                results.append(outputs)
                continue
            start = 0
            for request in group:
                count = len(next(iter(request.values())))
                results.append({k: v[start : start + count] for k, v in outputs.items()})
                start += count
        return results

    def _groups(self, requests: Sequence[Tensors]) -> list[list[Tensors]]:
        """Runs of consecutive requests that can share one graph run."""
        groups: list[list[Tensors]] = []
        for request in requests:
            if groups and self.signature.batched and _key(groups[-1][-1]) == _key(request):
                groups[-1].append(request)
            else:
                groups.append([request])
        return groups

    def _run(self, feeds: Tensors) -> dict[str, np.ndarray]:
        names = self.runner.output_names
        arrays = self.runner.session.run(names, dict(feeds))
        return dict(zip(names, arrays, strict=True))


def _key(request: Tensors) -> tuple:
    return tuple((name, array.dtype.str, array.shape[1:]) for name, array in request.items())


def _stack(group: list[Tensors]) -> dict[str, np.ndarray]:
    return {name: np.concatenate([r[name] for r in group]) for name in group[0]}


def raw_backend_factory(
    spec: ModelSpec, device: torch.device, dtype: torch.dtype, **options: object
) -> RawTensorBackend:
    """The registry's factory: ``dtype`` and options do not apply (the graph decides)."""
    return RawTensorBackend(spec, device)
