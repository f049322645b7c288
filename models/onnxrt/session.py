"""An onnxruntime session bound to one torch device, fed and read through DLPack.

Every ONNX-backed family (YOLACT, YOLO-seg, Mask R-CNN) runs its graph through
:class:`OrtRunner`, so provider choice, session options and the zero-copy hand-off to
torch live in one place:

* **Provider**: ``CUDAExecutionProvider`` (device id from the torch device) when the
  torch device is CUDA and the installed onnxruntime (``onnxruntime-gpu``, the ``gpu``
  extra) offers it; ``CPUExecutionProvider`` otherwise. Asking for CUDA where the
  provider is missing is an error, not a silent CPU fallback.
* **IO binding**: inputs are torch tensors on the device, bound by pointer through DLPack
  (no copy); outputs are allocated by onnxruntime on the same device and handed back as
  torch tensors through DLPack, so a GPU pipeline never round-trips through the host.
* **Session options**, set on purpose:
  ``graph_optimization_level = ORT_ENABLE_ALL`` (constant folding, fusions; the graphs
  here are static apart from the batch axis, so the extended fusions are safe);
  ``execution_mode = ORT_SEQUENTIAL`` (the graphs are chains; parallel branches buy
  nothing); ``intra_op_num_threads`` = torch's intra-op thread count unless given, so
  a worker running ONNX uses the same CPU share as one running eager PyTorch;
  ``inter_op_num_threads = 1``; ``enable_mem_pattern`` on (fixed shapes per batch size);
  ``session.intra_op.allow_spinning = 0``: onnxruntime's pool otherwise busy-waits after
  each run, which in a server steals the cores that decoding and RLE encoding need
  between batches (measured in docs/benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

CPU_PROVIDER = "CPUExecutionProvider"
CUDA_PROVIDER = "CUDAExecutionProvider"


class OrtError(RuntimeError):
    """The ONNX file or the requested device cannot be served by onnxruntime here."""


def session_options(intra_op_threads: int | None = None) -> ort.SessionOptions:
    """The options every maskserve session uses (see the module docstring)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = intra_op_threads or torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.enable_mem_pattern = True
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3
    return options


def providers_for(device: torch.device) -> list[str | tuple[str, dict[str, str]]]:
    """The execution providers for ``device``; raises when CUDA is asked for but absent."""
    if device.type == "cpu":
        return [CPU_PROVIDER]
    if device.type == "cuda":
        if CUDA_PROVIDER not in ort.get_available_providers():
            raise OrtError(
                f"device {device} needs onnxruntime's CUDA provider; install the 'gpu' extra "
                f"(onnxruntime-gpu). Available: {ort.get_available_providers()}"
            )
        index = device.index if device.index is not None else torch.cuda.current_device()
        return [(CUDA_PROVIDER, {"device_id": str(index)}), CPU_PROVIDER]
    raise OrtError(f"onnxruntime backend supports cpu and cuda devices, not {device}")


class OrtRunner:
    """One ``InferenceSession`` on ``device``; torch tensors in, torch tensors out."""

    def __init__(
        self,
        path: Path | str,
        device: torch.device | str = "cpu",
        intra_op_threads: int | None = None,
    ) -> None:
        self.path = Path(path)
        self.device = torch.device(device)
        if not self.path.is_file():
            raise OrtError(f"ONNX file {self.path} does not exist")
        try:
            self.session = ort.InferenceSession(
                str(self.path),
                sess_options=session_options(intra_op_threads),
                providers=providers_for(self.device),
            )
        except (ort.capi.onnxruntime_pybind11_state.Fail, RuntimeError) as exc:
            if isinstance(exc, OrtError):
                raise
            raise OrtError(f"onnxruntime cannot load {self.path}: {exc}") from exc
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map or {})
        # when a list, every feed is copied into it (int8 calibration, models/onnxrt/quantize.py)
        self.recording: list[dict[str, np.ndarray]] | None = None

    @property
    def provider(self) -> str:
        """The provider that runs the graph (the first one the session accepted)."""
        return self.session.get_providers()[0]

    def run(self, inputs: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Run the graph; inputs are moved to the runner's device if they are elsewhere.

        Returns every graph output as a torch tensor on the runner's device (zero-copy
        views of onnxruntime's buffers).
        """
        binding = self.session.io_binding()
        keep_alive = []
        for name in self.input_names:
            if name not in inputs:
                raise OrtError(f"{self.path.name}: missing input {name!r}")
            tensor = inputs[name].to(self.device).contiguous()
            keep_alive.append(tensor)
            binding.bind_ortvalue_input(name, ort.OrtValue.from_dlpack(tensor))
        if self.recording is not None:
            names = self.input_names
            self.recording.append(
                {n: t.detach().cpu().numpy().copy() for n, t in zip(names, keep_alive, strict=True)}
            )
        device_type = "cuda" if self.device.type == "cuda" else "cpu"
        device_id = self.device.index or 0
        for name in self.output_names:
            binding.bind_output(name, device_type, device_id)
        if self.device.type == "cuda":
            binding.synchronize_inputs()
        self.session.run_with_iobinding(binding)
        if self.device.type == "cuda":
            binding.synchronize_outputs()
        outputs = binding.get_outputs()
        return {
            name: torch.from_dlpack(value._get_c_value().to_dlpack())
            for name, value in zip(self.output_names, outputs, strict=True)
        }
