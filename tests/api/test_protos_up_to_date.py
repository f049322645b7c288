"""The committed generated gRPC code is exactly what ``scripts/gen_protos`` produces now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = {
    "server": ROOT / "server" / "api" / "gen",
    "clients": ROOT / "clients" / "maskserve_client" / "gen",
}


def _files(folder: Path) -> dict[str, str]:
    return {
        p.name: p.read_text()
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix in (".py", ".pyi")
    }


def test_generated_code_matches_the_protos(tmp_path: Path) -> None:
    pytest.importorskip("grpc_tools", reason="needs grpcio-tools (the dev extra) to regenerate")
    subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    for target, committed in COMMITTED.items():
        if not committed.is_dir():
            pytest.fail(f"{committed} is missing: run scripts/gen_protos")
        fresh, current = _files(tmp_path / target), _files(committed)
        assert sorted(fresh) == sorted(current), f"{committed}: run scripts/gen_protos"
        for name, text in fresh.items():
            assert current[name] == text, f"{committed / name} is stale: run scripts/gen_protos"


def test_generated_imports_are_package_relative() -> None:
    text = (COMMITTED["server"] / "segment_pb2_grpc.py").read_text()
    assert "from . import segment_pb2" in text
    assert "from maskserve.v1" not in text
