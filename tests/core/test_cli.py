"""The ``maskserve`` command's own behaviour: version, clear errors."""

from __future__ import annotations

import builtins
from pathlib import Path

import pytest

from maskserve.cli import main
from maskserve.models.registry import ZOO_DIR

EXAMPLE = ZOO_DIR / "yolact_shapes" / "example.png"


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("maskserve ")


def test_an_unknown_model_is_named_without_stray_quotes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["predict", str(EXAMPLE), "--model", "nope", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("maskserve: error: unknown model 'nope'") and '"' not in err


def test_evaluate_without_the_train_extra_names_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    real_import = builtins.__import__

    def no_pycocotools(name: str, *args: object, **kwargs: object) -> object:
        if name.startswith(("pycocotools", "maskserve.models.evaluation")):
            raise ModuleNotFoundError("No module named 'pycocotools'", name="pycocotools")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_pycocotools)
    assert main(["evaluate", "--num", "1"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'maskserve[train]'" in err and "pycocotools" in err


def test_predict_weights_takes_an_onnx_export_and_refuses_fp16_on_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    graph = tmp_path / "shapes.onnx"
    assert main(["export", "--model", "yolact_shapes", "--out", str(graph), "--no-verify"]) == 0
    out = tmp_path / "out"
    assert main(["predict", str(EXAMPLE), "--weights", str(graph), "--out", str(out)]) == 0
    assert (out / "example.json").is_file() and (out / "example.png").is_file()
    capsys.readouterr()
    assert main(["predict", str(EXAMPLE), "--weights", str(graph), "--fp16"]) == 2
    assert "--fp16" in capsys.readouterr().err


def test_predict_weights_names_what_it_takes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x80\x04not a pickle at all")
    assert main(["predict", str(EXAMPLE), "--weights", str(junk), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "could not be read as a checkpoint" in err and ".onnx" in err
    assert "Traceback" not in err
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(b"not onnx")
    assert main(["predict", str(EXAMPLE), "--weights", str(bare), "--out", str(tmp_path)]) == 2
    assert "not a readable ONNX file" in capsys.readouterr().err
