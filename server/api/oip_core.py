"""The Open Inference Protocol's answers, protocol-neutral: HTTP and gRPC adapters share it.

Everything here returns plain data in the protocol's JSON shape (Triton's, where Triton
extends the protocol); ``oip_http`` sends it as JSON, ``oip_grpc`` parses it into the
protobuf messages with ``json_format`` (the JSON names are the proto field names).
"""

from __future__ import annotations

import time
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from maskserve.api.oip_tensors import INPUT, OUTPUTS
from maskserve.batching import DEFAULT_PRIORITY, PRIORITY_LEVELS
from maskserve.errors import InvalidOptionError
from maskserve.models.raw.signature import TensorSignature, TensorSpec
from maskserve.options import SegmentOptions

if TYPE_CHECKING:
    from maskserve.service import SegmentationService

EXTENSIONS = ["binary_tensor_data", "statistics", "model_configuration", "parameters"]
"""What ``/v2`` lists: only what is implemented (no load/unload, no shared memory)."""
PROTOCOL = "oip"
VERSION = "1"
_CONFIG_TYPES = {"BYTES": "TYPE_STRING", "FP32": "TYPE_FP32", "INT32": "TYPE_INT32"}


def server_metadata() -> dict[str, Any]:
    try:
        ours = version("maskserve")
    except PackageNotFoundError:
        ours = "unknown"
    return {"name": "maskserve", "version": ours, "extensions": EXTENSIONS}


def model_metadata(service: SegmentationService, model: str) -> dict[str, Any]:
    info = service.get_model(model)
    signature = service.tensor_signature(model)
    if signature is not None:
        return {
            "name": info.name,
            "versions": [VERSION],
            "platform": "onnxruntime_onnx",
            "inputs": [_tensor(t) for t in signature.inputs],
            "outputs": [_tensor(t) for t in signature.outputs],
        }
    return {
        "name": info.name,
        "versions": [VERSION],
        "platform": f"maskserve_{info.family}",
        "inputs": [{"name": INPUT, "datatype": "BYTES", "shape": [-1]}],
        "outputs": [
            {"name": name, "datatype": kind, "shape": shape}
            for name, (kind, shape) in OUTPUTS.items()
        ],
    }


def model_config(service: SegmentationService, model: str) -> dict[str, Any]:
    """Triton's ``ModelConfig`` for ``model``: with ``max_batch_size > 0`` the dims leave
    out the batch dimension (the metadata's first ``-1``)."""
    config = service.model_config(model)
    signature = service.tensor_signature(model)
    if signature is not None:
        return tensor_model_config(config, signature)
    batching = config["batching"]
    return {
        "name": config["name"],
        "platform": f"maskserve_{config['family']}",
        "backend": "maskserve",
        "max_batch_size": batching["max_batch_size"],
        "input": [{"name": INPUT, "data_type": "TYPE_STRING", "dims": [1]}],
        "output": [
            {"name": name, "data_type": _CONFIG_TYPES[kind], "dims": shape[1:] or [1]}
            for name, (kind, shape) in OUTPUTS.items()
        ],
        "dynamic_batching": {
            "max_queue_delay_microseconds": int(batching["max_queue_delay_ms"] * 1000),
            "preferred_batch_size": [batching.get("chosen_batch_size") or 1],
            "priority_levels": PRIORITY_LEVELS,
            "default_priority_level": DEFAULT_PRIORITY,
        },
        "instance_group": _instances(config),
    }


def tensor_model_config(config: dict[str, Any], signature: TensorSignature) -> dict[str, Any]:
    """A tensor model's config as Triton gives an ONNX model's: with a free batch axis,
    ``max_batch_size`` and dims without it; a static batch is ``max_batch_size`` 0 and
    the full shape. ``parameters.metadata`` carries the graph's metadata as a Python
    literal (what Ultralytics' ``TritonRemoteModel`` reads)."""
    batched = signature.batched
    batching = config["batching"]

    def dims(tensor: TensorSpec) -> list[int]:
        return list(tensor.shape[1:] if batched else tensor.shape)

    answer: dict[str, Any] = {
        "name": config["name"],
        "platform": "onnxruntime_onnx",
        "backend": "onnxruntime",
        "max_batch_size": batching["max_batch_size"] if batched else 0,
        "input": [
            {"name": t.name, "data_type": f"TYPE_{t.datatype}", "dims": dims(t)}
            for t in signature.inputs
        ],
        "output": [
            {"name": t.name, "data_type": f"TYPE_{t.datatype}", "dims": dims(t)}
            for t in signature.outputs
        ],
        "instance_group": _instances(config),
    }
    if batched:
        answer["dynamic_batching"] = {
            "max_queue_delay_microseconds": int(batching["max_queue_delay_ms"] * 1000),
            "priority_levels": PRIORITY_LEVELS,
            "default_priority_level": DEFAULT_PRIORITY,
        }
    if signature.metadata:
        literal = repr(signature.literal_metadata())
        answer["parameters"] = {"metadata": {"string_value": literal}}
    return answer


def _tensor(tensor: TensorSpec) -> dict[str, Any]:
    return {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}


def _instances(config: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"count": config["instances_per_device"], "kind": _kind(device)}
        for device in config["devices"]
    ]


def _kind(device: str) -> str:
    return "KIND_GPU" if device.startswith("cuda") else "KIND_CPU"


def statistics(service: SegmentationService, model: str | None) -> dict[str, Any]:
    names = [model] if model else [m.name for m in service.list_models()]
    if model:
        service.get_model(model)  # unknown model: the service's not-found error
    return service.statistics.to_json(names)


def repository_index(service: SegmentationService, ready_only: bool) -> list[dict[str, str]]:
    """Every model of the repository with its state (READY, LOADING or UNAVAILABLE)."""
    return [
        {"name": name, "version": VERSION, "state": state, "reason": reason}
        for name, state, reason in service.model_states()
        if state == "READY" or not ready_only
    ]


def request_options(parameters: dict[str, Any]) -> tuple[SegmentOptions, float | None, int]:
    """Request parameters → (options, deadline from ``timeout`` µs, ``priority``)."""
    classes = parameters.get("classes")
    if isinstance(classes, str):
        classes = [int(c) for c in classes.split(",") if c.strip()] if classes.strip() else None
    try:
        options = SegmentOptions(
            score_threshold=_maybe(float, parameters.get("score_threshold")),
            max_detections=_maybe(int, parameters.get("max_detections")),
            classes=frozenset(int(c) for c in classes) if classes is not None else None,
            mask_format="rle",
        )
        priority = int(parameters.get("priority", 0))
        timeout_us = _maybe(int, parameters.get("timeout"))
    except (TypeError, ValueError) as exc:
        raise InvalidOptionError(f"invalid request parameter: {exc}") from None
    if priority < 0:
        raise InvalidOptionError("priority must be >= 0")
    if timeout_us is not None and timeout_us <= 0:
        raise InvalidOptionError("timeout (microseconds) must be > 0")
    deadline = None if timeout_us is None else time.monotonic() + timeout_us / 1e6
    return options, deadline, priority


def _maybe(kind: type, value: Any) -> Any:
    return None if value is None else kind(value)
