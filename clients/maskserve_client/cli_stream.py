"""``maskserve-client stream``: video or camera frames over gRPC ``SegmentStream``.

Frames are read with OpenCV (the optional ``video`` extra), JPEG-encoded and sent as fast
as the server's flow control allows; at the end the throughput and the client-side
latency percentiles are printed.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np
from tqdm import tqdm

from maskserve_client._cliargs import add_options, positive_float, positive_int
from maskserve_client.errors import MaskserveClientError
from maskserve_client.grpc import DEFAULT_TARGET, Frame, GrpcClient
from maskserve_client.types import StreamResult

VIDEO_EXTRA_HINT = "pip install 'maskserve-client[video]' (or opencv-python-headless)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="VIDEO|CAMERA_INDEX", help="a video file or camera index")
    parser.add_argument(
        "--target", default=DEFAULT_TARGET, help="gRPC address (default %(default)s)"
    )
    add_options(parser)
    parser.add_argument(
        "--skip-stale",
        action="store_true",
        help="let the server drop frames it could not start before newer ones arrived",
    )
    parser.add_argument(
        "--max-frames", type=positive_int, metavar="N", help="stop after this many frames"
    )
    parser.add_argument(
        "--fps",
        type=positive_float,
        help="send at most this many frames per second (e.g. a file's own rate, to measure "
        "live latency); default: as fast as the server takes them",
    )
    parser.add_argument(
        "--jpeg-quality", type=int, default=85, choices=range(1, 101), metavar="1..100"
    )
    parser.add_argument(
        "--mask-format",
        choices=("rle", "runs", "polygon", "none"),
        default="rle",
        help="default rle",
    )


def require_cv2() -> ModuleType:
    try:
        import cv2  # optional dependency (the "video" extra), imported only here
    except ImportError as exc:
        raise SystemExit(f"the stream command needs OpenCV: {VIDEO_EXTRA_HINT} ({exc})") from None
    return cv2


def open_source(source: str) -> Any:
    """A ``cv2.VideoCapture`` of a camera index (digits) or a video file/URL."""
    cv2 = require_cv2()
    capture = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not capture.isOpened():
        raise SystemExit(f"cannot open video source {source!r}")
    return capture


def read_frames(capture: Any, max_frames: int | None, quality: int = 85) -> Iterator[Frame]:
    """``(frame_id, JPEG bytes)`` from 0 until the source ends or ``max_frames``."""
    cv2 = require_cv2()
    params = [int(cv2.IMWRITE_JPEG_QUALITY), quality]
    frame_id = 0
    try:
        while max_frames is None or frame_id < max_frames:
            ok, frame = capture.read()
            if not ok:
                return
            ok, encoded = cv2.imencode(".jpg", frame, params)
            if not ok:
                raise RuntimeError(f"JPEG encoding of frame {frame_id} failed")
            yield frame_id, encoded.tobytes()
            frame_id += 1
    finally:
        capture.release()


def paced(frames: Iterable[Frame], fps: float) -> Iterator[Frame]:
    """``frames`` no faster than ``fps`` per second, as a live source would deliver them."""
    period = 1.0 / fps
    began = time.perf_counter()
    for index, frame in enumerate(frames):
        wait = began + index * period - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        yield frame


@dataclass
class StreamStats:
    """What came back, and how fast."""

    results: int = 0
    errors: int = 0
    skipped: int = 0
    detections: int = 0
    latencies_s: list[float] = field(default_factory=list)
    elapsed_s: float = 0.0

    def add(self, item: StreamResult) -> None:
        if item.skipped:
            self.skipped += 1
            return
        if item.result is None:
            self.errors += 1
        else:
            self.results += 1
            self.detections += len(item.result.detections)
        self.latencies_s.append(item.latency_s)

    def summary(self) -> str:
        frames = self.results + self.errors + self.skipped
        fps = self.results / self.elapsed_s if self.elapsed_s > 0 else 0.0
        lines = [
            f"frames: {frames} ({self.results} ok, {self.errors} failed, {self.skipped} skipped)",
            f"throughput: {fps:.1f} FPS over {self.elapsed_s:.2f} s, {self.detections} detections",
        ]
        if self.latencies_s:
            p50, p99 = np.percentile(np.asarray(self.latencies_s) * 1000.0, [50, 99])
            lines.append(f"latency: p50 {p50:.1f} ms, p99 {p99:.1f} ms")
        return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    capture = open_source(args.source)
    source = read_frames(capture, args.max_frames, args.jpeg_quality)
    frames = paced(source, args.fps) if args.fps is not None else source
    stats = StreamStats()
    began = time.perf_counter()
    try:
        with (
            GrpcClient(args.target, model=args.model) as client,
            tqdm(total=args.max_frames, unit="frame", desc="stream", file=sys.stderr) as bar,
        ):
            results = client.stream(
                frames,
                score_threshold=args.score_threshold,
                max_detections=args.max_detections,
                classes=args.classes,
                mask_format=args.mask_format,
                skip_stale=args.skip_stale,
            )
            for item in results:
                stats.add(item)
                if item.error is not None:
                    bar.write(f"frame {item.frame_id}: {item.error}", file=sys.stderr)
                bar.update()
    except MaskserveClientError as exc:
        print(f"error: stream failed: {exc}", file=sys.stderr)
        return 1
    finally:
        stats.elapsed_s = time.perf_counter() - began
        # release the capture here: a capture left open (e.g. the server was unreachable,
        # so gRPC never read a frame) aborted the process at exit ("FATAL: exception not
        # rethrown", exit code 134)
        with contextlib.suppress(ValueError):  # still running on gRPC's thread
            source.close()
            capture.release()
        print(stats.summary())
    return 1 if stats.errors else 0
