"""Open Inference Protocol tensors: the request's images in, the results as tensors out.

Facts from the protocol (KServe v2 + Triton's binary tensor extension): a body is a JSON
header optionally followed by raw tensors (``Inference-Header-Content-Length`` gives the
header's size; ``0`` means the whole body is the single input, "raw mode"); a binary input
says its size in ``parameters.binary_data_size``; a BYTES element is a 4-byte
little-endian length and its bytes.  Outputs are binary when the request asks for it
(``binary_data_output`` for all, ``binary_data`` per output, which wins).

maskserve's convention for a model served over the protocol: one input ``IMAGE`` (BYTES,
``[-1]``: encoded JPEG/PNG/WebP, batch first); outputs, batch first and padded to the
largest detection count of the request, like detection models' ``num_detections``:
``num_detections`` INT32 [N], ``boxes`` FP32 [N, D, 4] (x1, y1, x2, y2 pixels), ``scores``
FP32 [N, D], ``classes`` INT32 [N, D] (-1 padding), ``labels`` BYTES [N, D], ``masks``
BYTES [N, D] (COCO RLE counts strings; ``""`` padding) and ``image_size`` INT32 [N, 2]
(height, width).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maskserve.errors import InvalidImageError, InvalidOptionError
from maskserve.masks.rle import Rle
from maskserve.results import ImageResult

INPUT = "IMAGE"
OUTPUTS: dict[str, tuple[str, list[int]]] = {  # name -> (datatype, shape with -1 free)
    "num_detections": ("INT32", [-1]),
    "boxes": ("FP32", [-1, -1, 4]),
    "scores": ("FP32", [-1, -1]),
    "classes": ("INT32", [-1, -1]),
    "labels": ("BYTES", [-1, -1]),
    "masks": ("BYTES", [-1, -1]),
    "image_size": ("INT32", [-1, 2]),
}


@dataclass
class OipRequest:
    id: str | None
    images: list[bytes]
    parameters: dict[str, Any]
    outputs: dict[str, bool | None]  # requested outputs -> binary wanted (None: default)
    binary_default: bool


def parse_request(body: bytes, header_length: int | None) -> OipRequest:
    """The images and options of an infer request (JSON, binary extension or raw)."""
    if header_length == 0:  # raw mode: the body is the one BYTES element
        if not body:
            raise InvalidImageError("raw request with an empty body")
        return OipRequest(None, [body], {}, {}, True)
    header, size = json_header(body, header_length)
    parameters = header.get("parameters") or {}
    images = _images(header.get("inputs"), body[size:])
    outputs = {}
    for spec in header.get("outputs") or []:
        name = spec.get("name") if isinstance(spec, dict) else None
        if name not in OUTPUTS:
            raise InvalidOptionError(f"unknown output {name!r}; known: {sorted(OUTPUTS)}")
        outputs[name] = (spec.get("parameters") or {}).get("binary_data")
    binary_default = bool(parameters.get("binary_data_output", False))
    return OipRequest(header.get("id"), images, parameters, outputs, binary_default)


def json_header(body: bytes, header_length: int | None) -> tuple[dict[str, Any], int]:
    """The request's JSON header (all of the body, or its first ``header_length`` bytes
    when binary data follows) and where the binary data starts."""
    size = len(body) if header_length is None else header_length
    if size > len(body):
        raise InvalidOptionError("Inference-Header-Content-Length is larger than the body")
    try:
        header = json.loads(body[:size])
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidOptionError(f"the request header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise InvalidOptionError("the request header must be a JSON object")
    return header, size


def _images(inputs: Any, binary: bytes) -> list[bytes]:
    if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
        raise InvalidOptionError(f"expected one input named {INPUT!r} (BYTES)")
    tensor = inputs[0]
    if tensor.get("name") != INPUT or tensor.get("datatype") != "BYTES":
        raise InvalidOptionError(
            f"expected input {INPUT!r} of datatype BYTES, got {tensor.get('name')!r} "
            f"{tensor.get('datatype')!r}"
        )
    count = int(np.prod(tensor.get("shape") or [0]))
    size = (tensor.get("parameters") or {}).get("binary_data_size")
    if size is None:
        raise InvalidOptionError(
            "send the encoded images with the binary tensor extension (binary_data_size); "
            "JSON strings cannot carry image bytes"
        )
    if size != len(binary):
        raise InvalidOptionError(f"binary_data_size {size} != {len(binary)} bytes after the header")
    images = unpack_bytes(binary)
    if len(images) != count or count < 1:
        raise InvalidOptionError(f"input shape says {count} images, the data holds {len(images)}")
    return images


def unpack_bytes(data: bytes) -> list[bytes]:
    """BYTES elements: each a little-endian uint32 length, then that many bytes."""
    items, offset = [], 0
    while offset < len(data):
        if offset + 4 > len(data):
            raise InvalidOptionError("truncated BYTES element length")
        (length,) = struct.unpack_from("<I", data, offset)
        offset += 4
        if offset + length > len(data):
            raise InvalidOptionError("truncated BYTES element")
        items.append(data[offset : offset + length])
        offset += length
    return items


def pack_bytes(items: list[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


@dataclass
class Tensor:
    name: str
    datatype: str
    shape: list[int]
    values: list[Any] = field(default_factory=list)  # flat, row-major


def result_tensors(results: list[ImageResult]) -> list[Tensor]:
    """The outputs of one request, batch first, padded to its largest detection count."""
    width = max((len(r.detections) for r in results), default=0)
    tensors = {name: Tensor(name, kind, []) for name, (kind, _) in OUTPUTS.items()}
    for result in results:
        padding = width - len(result.detections)
        dets = result.detections
        tensors["num_detections"].values.append(len(dets))
        tensors["boxes"].values += [v for d in dets for v in d.box] + [0.0] * 4 * padding
        tensors["scores"].values += [d.score for d in dets] + [0.0] * padding
        tensors["classes"].values += [d.class_id for d in dets] + [-1] * padding
        tensors["labels"].values += [d.label for d in dets] + [""] * padding
        masks = [d.mask.counts.decode("ascii") if isinstance(d.mask, Rle) else "" for d in dets]
        tensors["masks"].values += masks + [""] * padding
        tensors["image_size"].values += [result.height, result.width]
    n = len(results)
    shapes = {
        "num_detections": [n],
        "boxes": [n, width, 4],
        "scores": [n, width],
        "classes": [n, width],
        "labels": [n, width],
        "masks": [n, width],
        "image_size": [n, 2],
    }
    for name, tensor in tensors.items():
        tensor.shape = shapes[name]
    return list(tensors.values())


_NUMPY = {"FP32": "<f4", "INT32": "<i4"}


def raw(tensor: Tensor) -> bytes:
    if tensor.datatype == "BYTES":
        return pack_bytes([str(v).encode() for v in tensor.values])
    return np.asarray(tensor.values, dtype=_NUMPY[tensor.datatype]).tobytes()


def encode_response(
    model: str, request: OipRequest, results: list[ImageResult]
) -> tuple[bytes, int | None]:
    """(body, JSON header length when binary outputs follow, else None)."""
    wanted = request.outputs or dict.fromkeys(OUTPUTS)
    header_outputs, chunks = [], []
    for tensor in result_tensors(results):
        if tensor.name not in wanted:
            continue
        binary = wanted[tensor.name]
        binary = request.binary_default if binary is None else bool(binary)
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": tensor.shape,
        }
        if binary:
            data = raw(tensor)
            entry["parameters"] = {"binary_data_size": len(data)}
            chunks.append(data)
        else:
            entry["data"] = tensor.values
        header_outputs.append(entry)
    return response_body(model, request.id, header_outputs, chunks)


def response_body(
    model: str, request_id: str | None, outputs: list[dict[str, Any]], chunks: list[bytes]
) -> tuple[bytes, int | None]:
    """The JSON header, then the binary outputs in order (the binary tensor extension):
    (body, the header's length when binary data follows, else None)."""
    header: dict[str, Any] = {"model_name": model, "model_version": "1", "outputs": outputs}
    if request_id is not None:
        header["id"] = request_id
    text = json.dumps(header).encode()
    if not chunks:
        return text, None
    return text + b"".join(chunks), len(text)
