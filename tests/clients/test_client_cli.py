"""maskserve-client: argument parsing, the overlay, and both commands against stand-in servers."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from client_stubs import Reply, StubGrpcServer, StubHttpServer, segment_body
from maskserve_client import SegmentResult, StreamResult
from maskserve_client.cli import build_parser, main
from maskserve_client.cli_segment import plan_jobs
from maskserve_client.cli_stream import StreamStats, paced
from maskserve_client.overlay import MASK_OPACITY, class_colour, draw_overlay
from PIL import Image


def test_segment_arguments() -> None:
    args = build_parser().parse_args(
        ["segment", "a.jpg", "b.png", "--out", "o", "--score-threshold", "0.4", "--classes", "0,2"]
    )
    assert args.files == [Path("a.jpg"), Path("b.png")] and args.out == Path("o")
    assert (args.url, args.model, args.concurrency) == ("http://127.0.0.1:8000", "yolact_shapes", 4)
    assert (args.score_threshold, args.classes, args.max_detections) == (0.4, [0, 2], None)


def test_stream_arguments() -> None:
    args = build_parser().parse_args(["stream", "0", "--skip-stale", "--max-frames", "30"])
    assert args.fps is None
    assert (args.source, args.target, args.skip_stale, args.max_frames) == (
        "0",
        "127.0.0.1:50051",
        True,
        30,
    )
    assert args.mask_format == "rle"


@pytest.mark.parametrize(
    "argv",
    [
        ["segment", "a.jpg"],  # --out is required
        ["segment", "a.jpg", "--out", "o", "--score-threshold", "1.5"],
        ["segment", "a.jpg", "--out", "o", "--classes", "x"],
        ["segment", "a.jpg", "--out", "o", "--concurrency", "0"],
        ["stream", "v.mp4", "--max-frames", "-1"],
        ["stream", "v.mp4", "--mask-format", "png"],
        ["stream", "v.mp4", "--fps", "0"],
        [],
    ],
)
def test_bad_arguments_exit_with_usage(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(argv)
    assert caught.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_repeated_stems_get_distinct_outputs() -> None:
    jobs = plan_jobs([Path("a/x.jpg"), Path("b/x.png"), Path("y.jpg"), Path("c/x.jpg")])
    assert [j.stem for j in jobs] == ["x", "x-1", "y", "x-2"]


def test_overlay_tints_masks_and_draws_boxes() -> None:
    pixels = np.full((48, 64, 3), 100, dtype=np.uint8)
    result = SegmentResult.from_json(segment_body())
    overlay = np.asarray(draw_overlay(pixels, result))
    assert overlay.shape == pixels.shape
    circle = np.asarray(class_colour(1), dtype=np.float64)
    expected = np.round(100 + (circle - 100) * MASK_OPACITY)
    assert np.allclose(overlay[28, 30], expected, atol=1)  # inside the mask, below the label
    assert np.array_equal(overlay[45, 60], [100, 100, 100])  # no mask, no box
    assert np.array_equal(overlay[25, 20], circle)  # left edge of the circle's box
    assert np.array_equal(overlay[6, 1], class_colour(0))  # the mask-less box is drawn too
    assert class_colour(0) != class_colour(1)


def write_png(path: Path, height: int = 48, width: int = 64) -> Path:
    Image.fromarray(np.zeros((height, width, 3), dtype=np.uint8)).save(path)
    return path


def test_segment_command_writes_json_and_overlays(
    http_stub: StubHttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    http_stub.default = Reply(body=segment_body())
    files = [write_png(tmp_path / f"img{i}.png") for i in range(3)]
    out = tmp_path / "out"
    argv = ["segment", *map(str, files), "--out", str(out), "--url", http_stub.url]
    assert main([*argv, "--concurrency", "2", "--max-detections", "5"]) == 0
    for path in files:
        assert json.loads((out / f"{path.stem}.json").read_text()) == segment_body()
        with Image.open(out / f"{path.stem}.overlay.png") as overlay:
            assert overlay.size == (64, 48)
            tinted = np.asarray(overlay.convert("RGB"))
        assert tinted[28, 30].any() and not tinted[45, 60].any()
    assert {s.query["max_detections"] for s in http_stub.seen} == {"5"}
    assert "3/3 images segmented, 6 detections" in capsys.readouterr().out


def test_segment_command_reports_failures(
    http_stub: StubHttpServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    http_stub.queue(Reply(400, {"error": {"code": "invalid_image", "message": "not an image"}}))
    http_stub.default = Reply(body=segment_body())
    files = [write_png(tmp_path / "a.png"), write_png(tmp_path / "b.png")]
    out = tmp_path / "out"
    argv = ["segment", *map(str, files), "--out", str(out), "--url", http_stub.url]
    assert main([*argv, "--concurrency", "1", "--no-overlay"]) == 1
    assert sorted(p.name for p in out.iterdir()) == ["b.json"]
    captured = capsys.readouterr()
    assert "a.png: invalid_image (400): not an image" in captured.err
    assert "1/2 images segmented" in captured.out
    assert main(["segment", str(tmp_path / "missing.png"), "--out", str(out)]) == 2


def write_video(path: Path, frames: int) -> Path:
    cv2 = pytest.importorskip("cv2", reason="the stream command needs opencv (video extra)")
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48))
    assert writer.isOpened()
    for index in range(frames):
        frame = np.zeros((48, 64, 3), dtype=np.uint8)
        frame[:, : (index + 1) * 4] = 255
        writer.write(frame)
    writer.release()
    return path


def test_stream_command_reports_fps_and_latency(
    grpc_stub: StubGrpcServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    video = write_video(tmp_path / "clip.avi", frames=8)
    argv = ["stream", str(video), "--target", grpc_stub.target, "--max-frames", "5"]
    assert main([*argv, "--skip-stale", "--mask-format", "none"]) == 0
    out = capsys.readouterr().out
    assert "frames: 5 (5 ok, 0 failed, 0 skipped)" in out
    assert "FPS" in out and "latency: p50" in out
    received = grpc_stub.servicer.frames
    assert [f.frame_id for f in received] == [0, 1, 2, 3, 4]
    assert all(f.image.startswith(b"\xff\xd8\xff") for f in received)
    assert received[0].skip_stale


def test_stream_command_refuses_a_missing_video(tmp_path: Path) -> None:
    pytest.importorskip("cv2", reason="the stream command needs opencv (video extra)")
    with pytest.raises(SystemExit, match="cannot open video source"):
        main(["stream", str(tmp_path / "nothing.mp4")])


def test_stream_stats_summary() -> None:
    stats = StreamStats(elapsed_s=2.0)
    result = SegmentResult("m", 1, 1, [])
    for index, latency in enumerate([0.010, 0.020, 0.030, 0.040]):
        stats.add(StreamResult(index, result=result, latency_s=latency))
    stats.add(StreamResult(9, skipped=True))
    summary = stats.summary()
    assert "frames: 5 (4 ok, 0 failed, 1 skipped)" in summary
    assert "2.0 FPS" in summary and "p50 25.0 ms" in summary and "p99 39.7 ms" in summary


def test_pacing_keeps_every_frame_in_order() -> None:
    frames = [(i, bytes([i])) for i in range(5)]
    assert list(paced(iter(frames), fps=1e6)) == frames


def test_stream_to_an_unreachable_server_exits_1_cleanly(tmp_path: Path) -> None:
    """The console script, as a user runs it: the error, then exit code 1 (not 134)."""
    import shutil
    import socket
    import subprocess

    from maskserve.models.registry import ZOO_DIR

    script = shutil.which("maskserve-client") or str(
        Path(sys.executable).with_name("maskserve-client")
    )
    with socket.socket() as sock:  # a port nobody listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        example = str(ZOO_DIR / "yolact_shapes" / "example.png")
        done = subprocess.run(
            [script, "stream", example, "--target", f"127.0.0.1:{port}"],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1, done.stderr
    assert "error: stream failed" in done.stderr and "FATAL" not in done.stderr
