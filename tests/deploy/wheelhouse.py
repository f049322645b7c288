"""torch's wheels for the image build, from this machine instead of PyTorch's index.

The Dockerfile installs torch/torchvision from ``TORCH_INDEX_URL``. PyTorch's own index is
not reachable from this machine or its CI, and a fresh download of the CUDA wheels from
PyPI is 2.9 GB. So the test downloads them once with the host's ``pip`` (which takes them
from the local mirrors or its cache when it can), keeps them in a folder that outlives the
run, and serves that folder on 127.0.0.1 as a PEP 503 index. The image build runs on the
host's network (``build.network: host`` in the compose file), so its ``pip`` reaches it.

The index URL is a build argument, part of the layer cache key of the torch layer: a fixed
port keeps that key stable from one run to the next, so a rebuild reuses the layer.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# the project's own pins (the Dockerfile's TORCH_VERSION defaults must match them)
PINS = tuple(
    dep
    for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    if dep.startswith(("torch==", "torchvision=="))
)
PORT = 38279  # fixed: see the module docstring; another is taken if it is busy


def _project(wheel: str) -> str:
    """PEP 503 normalized project name of a wheel file name."""
    return re.sub(r"[-_.]+", "-", wheel.split("-", 1)[0]).lower()


def ensure(folder: Path) -> list[str]:
    """Download the pinned wheels and their dependencies into ``folder`` (a no-op when they
    are there) and write the index pages; returns the wheel file names."""
    files = folder / "files"
    files.mkdir(parents=True, exist_ok=True)
    stamp = folder / "downloaded.txt"  # what the last complete download was for
    if not stamp.is_file() or stamp.read_text().split() != list(PINS):
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--only-binary=:all:",
                "--dest",
                str(files),
                *PINS,
            ],
            check=True,
            timeout=1800,
        )
        stamp.write_text("\n".join(PINS) + "\n")
    wheels = sorted(p.name for p in files.glob("*.whl"))
    by_project: dict[str, list[str]] = {}
    for wheel in wheels:
        by_project.setdefault(_project(wheel), []).append(wheel)
    for project, names in by_project.items():
        page = folder / "simple" / project / "index.html"
        page.parent.mkdir(parents=True, exist_ok=True)
        links = "".join(f'<a href="../../files/{n}">{n}</a>\n' for n in names)
        page.write_text(f"<!DOCTYPE html>\n<html><body>\n{links}</body></html>\n")
    return wheels


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextlib.contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1; yields the index URL (``.../simple``)."""
    handler = functools.partial(_Quiet, directory=str(folder))
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", PORT), handler)
    except OSError:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="wheelhouse", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/simple"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
