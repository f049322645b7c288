"""Open Inference Protocol tensors of a tensor model (family ``raw``), over HTTP.

A tensor model takes the named inputs its graph declares and answers with its outputs,
as Triton serves an ONNX model: ``data`` as a flat or nested JSON list, or binary with the
binary tensor extension (``binary_data_size`` per input, in input order after the JSON
header); raw mode (``Inference-Header-Content-Length: 0``) for a model with one input of
fully known shape. Outputs are binary where asked (``binary_data_output`` for all,
``binary_data`` per output), JSON lists otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from maskserve.api.oip_tensors import json_header, response_body
from maskserve.errors import InvalidOptionError
from maskserve.models.raw.signature import NUMPY_OF, TensorSignature, datatype_of


@dataclass
class TensorRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    parameters: dict[str, Any]
    outputs: dict[str, bool | None]  # requested outputs -> binary wanted (None: default)
    binary_default: bool


def array_of(name: str, datatype: str, shape: Any, data: bytes | Any) -> np.ndarray:
    """One input's array from its raw bytes (little-endian, row-major) or JSON values."""
    if datatype not in NUMPY_OF:
        raise InvalidOptionError(
            f"input {name!r}: datatype {datatype!r} is not one of {sorted(NUMPY_OF)}"
        )
    if not isinstance(shape, list | tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise InvalidOptionError(f"input {name!r}: shape must be a list of sizes, got {shape!r}")
    dtype, count = NUMPY_OF[datatype], int(np.prod(shape, dtype=np.int64))
    try:
        if isinstance(data, bytes | bytearray | memoryview):
            if len(data) != count * dtype.itemsize:
                raise InvalidOptionError(
                    f"input {name!r}: shape {list(shape)} of {datatype} needs "
                    f"{count * dtype.itemsize} bytes, got {len(data)}"
                )
            return np.frombuffer(data, dtype=dtype).reshape(shape)
        values = np.asarray(data, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidOptionError(f"input {name!r}: data is not {datatype}: {exc}") from None
    if values.size != count:
        raise InvalidOptionError(
            f"input {name!r}: shape {list(shape)} holds {count} values, the data {values.size}"
        )
    return values.reshape(shape)


def parse_tensor_request(
    body: bytes, header_length: int | None, signature: TensorSignature
) -> TensorRequest:
    if header_length == 0:
        return _raw_mode(body, signature)
    header, size = json_header(body, header_length)
    if not isinstance(header.get("inputs"), list):
        raise InvalidOptionError("the request header must be a JSON object with inputs")
    inputs, offset = {}, size
    for tensor in header["inputs"]:
        if not isinstance(tensor, dict):
            raise InvalidOptionError("each input must be a JSON object")
        name = str(tensor.get("name"))
        binary = (tensor.get("parameters") or {}).get("binary_data_size")
        if binary is not None:
            if not isinstance(binary, int) or binary < 0 or offset + binary > len(body):
                raise InvalidOptionError(f"input {name!r}: binary_data_size overruns the body")
            data: Any = body[offset : offset + binary]
            offset += binary
        elif "data" in tensor:
            data = tensor["data"]
        else:
            raise InvalidOptionError(f"input {name!r} has neither data nor binary_data_size")
        if name in inputs:
            raise InvalidOptionError(f"input {name!r} is given twice")
        inputs[name] = array_of(name, str(tensor.get("datatype")), tensor.get("shape"), data)
    if offset != len(body):
        raise InvalidOptionError(f"{len(body) - offset} bytes after the inputs' binary data")
    parameters = header.get("parameters") or {}
    return TensorRequest(
        header.get("id"),
        inputs,
        parameters,
        requested_outputs(header.get("outputs"), signature),
        bool(parameters.get("binary_data_output", False)),
    )


def _raw_mode(body: bytes, signature: TensorSignature) -> TensorRequest:
    if len(signature.inputs) != 1 or -1 in signature.inputs[0].shape:
        raise InvalidOptionError(
            "raw mode (Inference-Header-Content-Length: 0) needs a model with one input of "
            "fully known shape"
        )
    spec = signature.inputs[0]
    array = array_of(spec.name, spec.datatype, list(spec.shape), body)
    return TensorRequest(None, {spec.name: array}, {}, {}, True)


def requested_outputs(specs: Any, signature: TensorSignature) -> dict[str, bool | None]:
    outputs: dict[str, bool | None] = {}
    for spec in specs or []:
        name = spec.get("name") if isinstance(spec, dict) else None
        if signature.output(str(name)) is None:
            known = [t.name for t in signature.outputs]
            raise InvalidOptionError(f"unknown output {name!r}; known: {known}")
        outputs[str(name)] = (spec.get("parameters") or {}).get("binary_data")
    return outputs


def encode_tensor_response(
    model: str, request: TensorRequest, outputs: dict[str, np.ndarray]
) -> tuple[bytes, int | None]:
    """(body, JSON header length when binary outputs follow, else None)."""
    wanted = request.outputs or dict.fromkeys(outputs)
    header_outputs, chunks = [], []
    for name, binary in wanted.items():
        array = np.ascontiguousarray(outputs[name])
        datatype = datatype_of(array.dtype)
        entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
        if request.binary_default if binary is None else bool(binary):
            data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
            entry["parameters"] = {"binary_data_size": len(data)}
            chunks.append(data)
        else:
            entry["data"] = array.reshape(-1).tolist()
        header_outputs.append(entry)
    return response_body(model, request.id, header_outputs, chunks)
