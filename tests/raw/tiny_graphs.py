"""Small ONNX graphs for the tensor-model tests, built with onnx's helpers (no export)."""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto, helper


def write_tiny(path: Path, batch: int | str = "N", metadata: dict[str, str] | None = None) -> Path:
    """``y = 2·x + offset`` (FP32 [B, 4]) and ``positive = x > 0`` (BOOL [B, 4]) from inputs
    ``x`` (FP32 [B, 4]) and ``offset`` (FP32 [B, 1]); ``batch`` free ("N") or fixed."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])
    offset = helper.make_tensor_value_info("offset", TensorProto.FLOAT, [batch, 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])
    positive = helper.make_tensor_value_info("positive", TensorProto.BOOL, [batch, 4])
    constants = [
        helper.make_tensor("two", TensorProto.FLOAT, [], [2.0]),
        helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
    ]
    nodes = [
        helper.make_node("Mul", ["x", "two"], ["doubled"]),
        helper.make_node("Add", ["doubled", "offset"], ["y"]),
        helper.make_node("Greater", ["x", "zero"], ["positive"]),
    ]
    graph = helper.make_graph(nodes, "tiny", [x, offset], [y, positive], initializer=constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata:
        helper.set_model_props(model, metadata)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def write_tensor_model(folder: Path, batch: int | str = "N", batching: str = "") -> Path:
    """A repository folder of family ``raw`` around :func:`write_tiny`."""
    write_tiny(folder / "model.onnx", batch, {"names": "{0: 'a'}", "stride": "32", "note": "x y"})
    (folder / "model.toml").write_text(
        f'family = "raw"\nweights = "model.onnx"\n\n[raw]\n{batching}'
    )
    return folder
