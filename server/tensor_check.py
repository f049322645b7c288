"""A tensor model's request checked against its signature before it is queued.

A request that reached the graph with a wrong name, datatype or shape would fail inside
onnxruntime and take its whole batch (and the model's health count) with it; here it is
a clear 400 / INVALID_ARGUMENT of its own.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from maskserve.errors import InvalidOptionError
from maskserve.models.raw.signature import TensorSignature


def check_tensors(signature: TensorSignature, inputs: Mapping[str, np.ndarray]) -> None:
    expected = {t.name for t in signature.inputs}
    if set(inputs) != expected:
        missing, unknown = sorted(expected - set(inputs)), sorted(set(inputs) - expected)
        raise InvalidOptionError(
            f"the model's inputs are {sorted(expected)}; missing {missing}, unknown {unknown}"
        )
    batches = set()
    for spec in signature.inputs:
        array = inputs[spec.name]
        if array.dtype != spec.dtype:
            raise InvalidOptionError(
                f"input {spec.name!r} must be {spec.datatype}, got {array.dtype.name}"
            )
        if not spec.accepts(array.shape):
            shown = [d if d >= 0 else -1 for d in spec.shape]
            raise InvalidOptionError(
                f"input {spec.name!r} has shape {list(array.shape)}; the model takes {shown} "
                "(-1: any size)"
            )
        batches.add(array.shape[0] if array.ndim else 1)
    if len(batches) > 1:
        raise InvalidOptionError(f"the inputs disagree on the batch size: {sorted(batches)}")
    if 0 in batches:
        raise InvalidOptionError("a request needs at least one row (batch size 0)")
