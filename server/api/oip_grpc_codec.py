"""Open Inference Protocol gRPC messages ↔ the protocol-neutral request and result tensors.

Rules from the protocol: an input's data travels either in ``raw_input_contents`` (one
entry per input, same order; tritonclient always sends this way) or in the input's typed
``contents``, never mixed; a BYTES element in raw form is a 4-byte little-endian length
and its bytes. Answers use the form the request used: raw outputs for raw inputs, typed
``contents`` otherwise.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maskserve.api.gen import oip_service_pb2 as pb
from maskserve.api.oip_tensors import INPUT, OUTPUTS, OipRequest, Tensor, raw, unpack_bytes
from maskserve.errors import InvalidOptionError


def parameters_of(params: Any) -> dict[str, Any]:
    """A protobuf ``map<string, InferParameter>`` as plain Python values."""
    values = {}
    for key, param in params.items():
        choice = param.WhichOneof("parameter_choice")
        values[key] = None if choice is None else getattr(param, choice)
    return values


def parse_infer(request: pb.ModelInferRequest) -> tuple[OipRequest, bool]:
    """The images and options of a ``ModelInfer`` request, and whether it used raw form."""
    if len(request.inputs) != 1:
        raise InvalidOptionError(f"expected one input named {INPUT!r} (BYTES)")
    tensor = request.inputs[0]
    if tensor.name != INPUT or tensor.datatype != "BYTES":
        raise InvalidOptionError(
            f"expected input {INPUT!r} of datatype BYTES, got {tensor.name!r} {tensor.datatype!r}"
        )
    typed = list(tensor.contents.bytes_contents)
    if request.raw_input_contents:
        if typed or tensor.HasField("contents"):
            raise InvalidOptionError("raw_input_contents and typed contents cannot be mixed")
        if len(request.raw_input_contents) != 1:
            raise InvalidOptionError("raw_input_contents must hold exactly one entry per input")
        images, is_raw = unpack_bytes(request.raw_input_contents[0]), True
    else:
        images, is_raw = typed, False
    count = int(np.prod(list(tensor.shape))) if tensor.shape else 0
    if count < 1 or len(images) != count:
        raise InvalidOptionError(f"input shape says {count} images, the data holds {len(images)}")
    outputs: dict[str, bool | None] = {}
    for spec in request.outputs:
        if spec.name not in OUTPUTS:
            raise InvalidOptionError(f"unknown output {spec.name!r}; known: {sorted(OUTPUTS)}")
        outputs[spec.name] = None
    parsed = OipRequest(
        request.id or None, list(images), parameters_of(request.parameters), outputs, is_raw
    )
    return parsed, is_raw


_TYPED = {"FP32": "fp32_contents", "INT32": "int_contents", "BYTES": "bytes_contents"}


def infer_response(
    model: str, request: OipRequest, tensors: list[Tensor], is_raw: bool
) -> pb.ModelInferResponse:
    wanted = request.outputs or dict.fromkeys(OUTPUTS)
    response = pb.ModelInferResponse(model_name=model, model_version="1", id=request.id or "")
    for tensor in tensors:
        if tensor.name not in wanted:
            continue
        output = response.outputs.add(name=tensor.name, datatype=tensor.datatype)
        output.shape.extend(tensor.shape)
        if is_raw:
            response.raw_output_contents.append(raw(tensor))
            continue
        values = tensor.values
        if tensor.datatype == "BYTES":
            values = [str(v).encode() for v in values]
        getattr(output.contents, _TYPED[tensor.datatype]).extend(values)
    return response
