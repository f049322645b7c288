"""The ``raw`` family: an ONNX graph's own signature, and batches that stack requests only
where the graph allows it (each answer equal to running the request alone)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from tiny_graphs import write_tensor_model

from maskserve.models.raw.backend import RawTensorBackend
from maskserve.models.raw.signature import TensorSignature, datatype_of
from maskserve.models.registry import ModelSpec, build_backend


def backend(tmp_path: Path, batch: int | str = "N") -> RawTensorBackend:
    folder = write_tensor_model(tmp_path / f"tiny_{batch}", batch)
    built = build_backend(ModelSpec.from_folder(folder), "cpu")
    assert isinstance(built, RawTensorBackend)
    return built


def request(rows: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "x": rng.normal(size=(rows, 4)).astype(np.float32),
        "offset": rng.normal(size=(rows, 1)).astype(np.float32),
    }


def alone(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return ort.InferenceSession(str(path)).run(["y", "positive"], feeds)


def test_the_signature_is_the_graphs_own(tmp_path: Path) -> None:
    signature = backend(tmp_path).signature
    assert [(t.name, t.datatype, t.shape) for t in signature.inputs] == [
        ("x", "FP32", (-1, 4)),
        ("offset", "FP32", (-1, 1)),
    ]
    assert [(t.name, t.datatype, t.shape) for t in signature.outputs] == [
        ("y", "FP32", (-1, 4)),
        ("positive", "BOOL", (-1, 4)),
    ]
    assert signature.batched
    assert signature.literal_metadata() == {"names": {0: "a"}, "stride": 32, "note": "x y"}
    assert not backend(tmp_path, 2).signature.batched


def test_a_batch_answers_each_request_as_if_alone(tmp_path: Path) -> None:
    model = backend(tmp_path)
    requests = [request(rows, seed) for seed, rows in enumerate([1, 3, 2])]
    answers = model.infer(requests)
    assert len(answers) == len(requests)
    for feeds, answer in zip(requests, answers, strict=True):
        y, positive = alone(model.runner.path, feeds)
        np.testing.assert_array_equal(answer["y"], y)
        np.testing.assert_array_equal(answer["positive"], positive)


def test_requests_share_a_run_only_where_the_graph_allows(tmp_path: Path) -> None:
    model = backend(tmp_path)
    requests = [request(2, 0), request(1, 1), request(3, 2)]
    assert [len(group) for group in model._groups(requests)] == [3]
    fixed = backend(tmp_path, 2)
    assert [len(group) for group in fixed._groups([request(2, 0), request(2, 1)])] == [1, 1]
    answers = fixed.infer([request(2, 0), request(2, 1)])
    np.testing.assert_array_equal(answers[1]["y"], alone(fixed.runner.path, request(2, 1))[0])


def test_the_warmup_input_fits_the_graph(tmp_path: Path) -> None:
    for model in (backend(tmp_path), backend(tmp_path, 3)):
        feeds = model.warmup_input()
        assert {k: v.dtype for k, v in feeds.items()} == {"x": np.float32, "offset": np.float32}
        assert len(model.infer([feeds])) == 1


@pytest.mark.parametrize(
    ("dtype", "name"),
    [
        (np.float32, "FP32"),
        (np.float16, "FP16"),
        (np.uint8, "UINT8"),
        (np.bool_, "BOOL"),
        (np.dtype(">i8"), "INT64"),
    ],
)
def test_datatype_names(dtype: np.dtype, name: str) -> None:
    assert datatype_of(np.dtype(dtype)) == name


def test_an_unsupported_datatype_is_named() -> None:
    with pytest.raises(ValueError, match="no Open Inference Protocol datatype"):
        datatype_of(np.dtype(np.complex64))
    assert isinstance(TensorSignature((), (), {}).batched, bool)
