"""A tensor model's request is checked against the graph's signature before it is queued."""

from __future__ import annotations

import numpy as np
import pytest

from maskserve.errors import InvalidOptionError
from maskserve.models.raw.signature import TensorSignature, TensorSpec
from maskserve.tensor_check import check_tensors

SIGNATURE = TensorSignature(
    inputs=(TensorSpec("x", "FP32", (-1, 4)), TensorSpec("k", "INT64", (-1, 1))),
    outputs=(TensorSpec("y", "FP32", (-1, 4)),),
    metadata={},
)


def feeds(rows: int = 2, **changes: np.ndarray) -> dict[str, np.ndarray]:
    values = {"x": np.zeros((rows, 4), np.float32), "k": np.zeros((rows, 1), np.int64)}
    values.update(changes)
    return values


def test_a_request_that_fits_passes() -> None:
    check_tensors(SIGNATURE, feeds())


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"x": np.zeros((2, 4), np.float32)}, "missing \\['k'\\]"),
        (feeds(extra=np.zeros(1, np.float32)), "unknown \\['extra'\\]"),
        (feeds(x=np.zeros((2, 4), np.float64)), "'x' must be FP32, got float64"),
        (feeds(x=np.zeros((2, 3), np.float32)), "'x' has shape \\[2, 3\\]"),
        (feeds(x=np.zeros((2, 4, 1), np.float32)), "'x' has shape"),
        (feeds(k=np.zeros((3, 1), np.int64)), "disagree on the batch size"),
        (feeds(0), "at least one row"),
    ],
)
def test_what_does_not_fit_is_a_clear_error(inputs: dict[str, np.ndarray], message: str) -> None:
    with pytest.raises(InvalidOptionError, match=message):
        check_tensors(SIGNATURE, inputs)
