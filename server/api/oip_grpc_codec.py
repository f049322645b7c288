"""Open Inference Protocol gRPC messages ↔ the protocol-neutral request and result tensors.

Rules from the protocol: an input's data travels either in ``raw_input_contents`` (one
entry per input, same order; tritonclient always sends this way) or in the input's typed
``contents``, never mixed; a BYTES element in raw form is a 4-byte little-endian length
and its bytes. Answers use the form the request used: raw outputs for raw inputs, typed
``contents`` otherwise; a tensor model (family ``raw``) always answers raw, as Triton does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from maskserve.api.gen import oip_service_pb2 as pb
from maskserve.api.oip_raw_tensors import TensorRequest, array_of, requested_outputs
from maskserve.api.oip_tensors import INPUT, OUTPUTS, OipRequest, Tensor, raw, unpack_bytes
from maskserve.errors import InvalidOptionError
from maskserve.models.raw.signature import TensorSignature, datatype_of


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


_TYPED_INPUT = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
}


def parse_tensor_infer(request: pb.ModelInferRequest, signature: TensorSignature) -> TensorRequest:
    """A tensor model's ``ModelInfer``: ``raw_input_contents`` (one per input, in order)
    or each input's typed ``contents`` (FP16 has none: raw only)."""
    raw_contents = list(request.raw_input_contents)
    if raw_contents and len(raw_contents) != len(request.inputs):
        raise InvalidOptionError("raw_input_contents must hold exactly one entry per input")
    inputs = {}
    for index, tensor in enumerate(request.inputs):
        if raw_contents:
            if tensor.HasField("contents"):
                raise InvalidOptionError("raw_input_contents and typed contents cannot be mixed")
            data: Any = raw_contents[index]
        else:
            field = _TYPED_INPUT.get(tensor.datatype)
            if field is None:
                raise InvalidOptionError(
                    f"input {tensor.name!r}: {tensor.datatype} travels in raw_input_contents"
                )
            data = list(getattr(tensor.contents, field))
        if tensor.name in inputs:
            raise InvalidOptionError(f"input {tensor.name!r} is given twice")
        inputs[tensor.name] = array_of(tensor.name, tensor.datatype, list(tensor.shape), data)
    outputs = requested_outputs([{"name": o.name} for o in request.outputs], signature)
    return TensorRequest(
        request.id or None, inputs, parameters_of(request.parameters), outputs, True
    )


def tensor_infer_response(
    model: str, request: TensorRequest, outputs: dict[str, np.ndarray]
) -> pb.ModelInferResponse:
    """Outputs in ``raw_output_contents``, as Triton answers over gRPC."""
    response = pb.ModelInferResponse(model_name=model, model_version="1", id=request.id or "")
    for name in request.outputs or outputs:
        array = np.ascontiguousarray(outputs[name])
        output = response.outputs.add(name=name, datatype=datatype_of(array.dtype))
        output.shape.extend(array.shape)
        response.raw_output_contents.append(array.astype(array.dtype.newbyteorder("<")).tobytes())
    return response
