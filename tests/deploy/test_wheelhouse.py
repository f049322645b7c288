"""tests/deploy/wheelhouse.py: the local index the `docker` tests build the image from."""

from __future__ import annotations

import re
import urllib.request
from pathlib import Path

import wheelhouse

DOCKERFILE = Path(__file__).resolve().parents[2] / "Dockerfile"


def test_the_dockerfile_pins_the_torch_the_project_pins() -> None:
    text = DOCKERFILE.read_text()
    args = dict(re.findall(r"^ARG (TORCH_VERSION|TORCHVISION_VERSION)=(\S+)$", text, re.M))
    assert set(wheelhouse.PINS) == {
        f"torch=={args['TORCH_VERSION']}",
        f"torchvision=={args['TORCHVISION_VERSION']}",
    }


def test_the_index_lists_each_wheel_under_its_normalized_project_name(tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    for name in ("nvidia_cuda_runtime-13.0.96-py3-none-any.whl", "Jinja2-3.1.6-py3-none-any.whl"):
        (files / name).write_bytes(b"not a real wheel")
    (tmp_path / "downloaded.txt").write_text("\n".join(wheelhouse.PINS))  # no download
    assert len(wheelhouse.ensure(tmp_path)) == 2
    with wheelhouse.serve(tmp_path) as index:
        assert index.startswith("http://127.0.0.1:") and index.endswith("/simple")
        with urllib.request.urlopen(f"{index}/nvidia-cuda-runtime/", timeout=30) as reply:
            page = reply.read().decode()
        href = re.search(r'href="([^"]+)"', page)
        assert href is not None
        url = f"{index}/nvidia-cuda-runtime/{href.group(1)}"
        with urllib.request.urlopen(url, timeout=30) as reply:
            assert reply.read() == b"not a real wheel"
        with urllib.request.urlopen(f"{index}/jinja2/", timeout=30) as reply:
            assert "Jinja2-3.1.6" in reply.read().decode()
