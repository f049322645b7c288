"""A tensor model's inputs and outputs as the Open Inference Protocol names them.

The protocol's datatypes (``FP32``, ``UINT8``, …) map one to one onto ONNX element types
and numpy dtypes; a dimension the graph leaves free (symbolic or unknown) is ``-1``.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

ONNX_TO_OIP = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
}
NUMPY_OF = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
}


def datatype_of(dtype: np.dtype) -> str:
    """The protocol's name of a numpy dtype (either byte order)."""
    for name, known in NUMPY_OF.items():
        if known == dtype.newbyteorder("<"):
            return name
    raise ValueError(f"no Open Inference Protocol datatype for {dtype}")


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str  # the protocol's name: FP32, UINT8, …
    shape: tuple[int, ...]  # -1 where the graph leaves the dimension free

    @property
    def dtype(self) -> np.dtype:
        return NUMPY_OF[self.datatype]

    def accepts(self, shape: Sequence[int]) -> bool:
        return len(shape) == len(self.shape) and all(
            want in (-1, got) for want, got in zip(self.shape, shape, strict=True)
        )


@dataclass(frozen=True)
class TensorSignature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    metadata: Mapping[str, str]

    @property
    def batched(self) -> bool:
        """Whether requests can be stacked: every tensor's first dimension is free."""
        return all(t.shape and t.shape[0] == -1 for t in (*self.inputs, *self.outputs))

    def input(self, name: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorSpec | None:
        return next((t for t in self.outputs if t.name == name), None)

    def literal_metadata(self) -> dict[str, Any]:
        """The graph's metadata with each value read as a Python literal where it is one
        (Ultralytics writes ``names``, ``imgsz``, ``stride``, … that way)."""
        values: dict[str, Any] = {}
        for key, text in self.metadata.items():
            try:
                values[key] = ast.literal_eval(text)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                values[key] = text
        return values


def spec_of(node: Any) -> TensorSpec:
    """A :class:`TensorSpec` from an onnxruntime ``NodeArg``."""
    if node.type not in ONNX_TO_OIP:
        raise ValueError(f"tensor {node.name!r} has the unsupported type {node.type}")
    shape = tuple(d if isinstance(d, int) and d > 0 else -1 for d in node.shape)
    return TensorSpec(node.name, ONNX_TO_OIP[node.type], shape)
