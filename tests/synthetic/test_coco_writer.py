"""The COCO data set writer and its command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from maskserve.models.synthetic import SHAPE_CLASSES, generate_sample, write_coco_dataset
from maskserve.models.synthetic.__main__ import main

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def _read_rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def test_dataset_matches_generated_samples(tmp_path: Path) -> None:
    seed, height, width, num = 7, 72, 104, 3
    ann_path = write_coco_dataset(tmp_path / "ds", num, seed, height, width)
    assert ann_path == tmp_path / "ds" / "annotations.json"
    coco = COCO(str(ann_path))
    assert sorted(coco.getImgIds()) == [1, 2, 3]
    cats = coco.loadCats(coco.getCatIds())
    assert [(c["id"], c["name"]) for c in cats] == [(i + 1, n) for i, n in enumerate(SHAPE_CLASSES)]

    rng = np.random.default_rng(seed)
    ann_ids: list[int] = []
    for index in range(num):
        sample = generate_sample(rng, height, width)
        info = coco.loadImgs(index + 1)[0]
        assert info["file_name"] == f"{index:06d}.png"
        assert (info["height"], info["width"]) == (height, width)
        image = _read_rgb(tmp_path / "ds" / "images" / info["file_name"])
        np.testing.assert_array_equal(image, sample.image)  # RGB on disk, lossless

        anns = sorted(coco.loadAnns(coco.getAnnIds(imgIds=[index + 1])), key=lambda a: a["id"])
        assert len(anns) == len(sample.masks)
        for ann, mask, cls, box in zip(
            anns, sample.masks, sample.class_ids, sample.boxes, strict=True
        ):
            assert isinstance(ann["segmentation"]["counts"], str)
            np.testing.assert_array_equal(mask_utils.decode(ann["segmentation"]).astype(bool), mask)
            np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), mask)
            assert ann["category_id"] == int(cls) + 1
            assert ann["area"] == int(mask.sum())
            x1, y1, x2, y2 = box.tolist()
            assert ann["bbox"] == [x1, y1, x2 - x1, y2 - y1]
            assert ann["iscrowd"] == 0
            ann_ids.append(ann["id"])
    assert sorted(ann_ids) == list(range(1, len(ann_ids) + 1)), "annotation ids unique"


def test_cli_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path), "--num", "2", "--seed", "1", "--size", "64x48"]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "annotations.json")
    image = _read_rgb(tmp_path / "images" / "000001.png")
    assert image.shape == (48, 64, 3), "--size is WIDTHxHEIGHT"


def test_cli_module_entry_point(tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "maskserve.models.synthetic", "--out", str(tmp_path)]
    done = subprocess.run([*cmd, "--num", "1", "--size", "40x40"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "images" / "000000.png").is_file()
    bad = subprocess.run([*cmd, "--num", "1", "--size", "40by40"], capture_output=True, text=True)
    assert bad.returncode != 0 and "WIDTHxHEIGHT" in bad.stderr
