"""Stand-in servers on 127.0.0.1 for the client tests: real HTTP and gRPC, scripted replies.

They let the tests exercise what a live maskserve cannot produce on demand (a 503 with a
given ``Retry-After``, a failing frame mid-stream) and judge what the client sent.
"""

from __future__ import annotations

import io
import itertools
import json
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import grpc
import numpy as np
from maskserve_client.gen import segment_pb2 as pb
from maskserve_client.gen import segment_pb2_grpc as pb_grpc
from PIL import Image
from pycocotools import mask as coco_mask

#: A request image larger than gRPC's default 4 MiB limit gets a reply larger than it too.
BIG = 5 * 1024 * 1024


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


class StubHttpServer:
    """Answers each request with the next queued :class:`Reply` (or ``default``)."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.default = Reply(404, {"error": {"code": "not_found", "message": "no reply queued"}})
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def queue(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def _answer(self, seen: Seen) -> Reply:
        with self._lock:
            self.seen.append(seen)
            return self.replies.popleft() if self.replies else self.default

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                parts = urlsplit(self.path)
                seen = Seen(
                    self.command,
                    parts.path,
                    dict(parse_qsl(parts.query)),
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                reply = stub._answer(seen)
                raw = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body)
                data = raw if isinstance(raw, bytes) else raw.encode()
                self.send_response(reply.status)
                for key, value in {"content-type": "application/json", **reply.headers}.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _serve  # noqa: N815 - http.server's naming

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def disk_mask(height: int, width: int, cy: int, cx: int, radius: int) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2


def coco_rle(mask: np.ndarray) -> dict[str, Any]:
    """The reference encoding (what the server must emit), counts as str."""
    encoded = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode()}


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def segment_body(height: int = 48, width: int = 64) -> dict[str, Any]:
    """A server response with two detections: a disk (class 1) and a box-only one (class 0)."""
    return {
        "model": "yolact_shapes",
        "image": {"width": width, "height": height},
        "detections": [
            {
                "class_id": 1,
                "label": "circle",
                "score": 0.9,
                "box": [20.0, 10.0, 41.0, 31.0],
                "mask": coco_rle(disk_mask(height, width, 20, 30, 10)),
            },
            {"class_id": 0, "label": "square", "score": 0.5, "box": [1, 2, 5, 6], "mask": None},
        ],
        "timings": {"queue": 0.001, "inference": 0.01, "postprocess": 0.002, "total": 0.013},
    }


def reference_runs(mask: np.ndarray) -> list[int]:
    """Uncompressed COCO runs, the slow obvious way: group the column-major pixels."""
    runs = [len(list(group)) for _, group in itertools.groupby(mask.ravel(order="F").tolist())]
    return [0, *runs] if mask.size and mask.ravel(order="F")[0] else runs


def mask_message(mask: np.ndarray, mask_format: int) -> pb.Mask:
    height, width = mask.shape
    message = pb.Mask(height=height, width=width)
    if mask_format == pb.RLE_RAW_RUNS:
        message.runs.counts.extend(reference_runs(mask))
    else:
        message.compressed = coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))["counts"]
    return message


class StubServicer(pb_grpc.SegmentationServicer):
    """Segment: a disk mask sized to the image; stream: echo, ``bad`` fails, ``stale`` skips."""

    def __init__(self) -> None:
        self.requests: list[pb.SegmentRequest] = []
        self.frames: list[pb.StreamFrame] = []
        self.unavailable_first = 0
        self.models = [pb.ModelInfo(name="yolact_shapes", family="yolact", class_names=["a", "b"])]

    def response(self, image: bytes, options: pb.SegmentOptions) -> pb.SegmentResponse:
        if len(image) > BIG:
            return pb.SegmentResponse(model="big", detections=[pb.Detection(label="x" * BIG)])
        with Image.open(io.BytesIO(image)) as opened:
            width, height = opened.size
        detection = pb.Detection(
            class_id=1, label="circle", score=0.75, box=pb.Box(x1=1, y1=2, x2=30, y2=40)
        )
        if options.mask_format != pb.NONE:
            mask = disk_mask(height, width, height // 2, width // 2, min(height, width) // 3)
            detection.mask.CopyFrom(mask_message(mask, options.mask_format))
        timings = pb.Timings(queue_seconds=0.5, total_seconds=1.5)
        return pb.SegmentResponse(
            model="yolact_shapes",
            width=width,
            height=height,
            detections=[detection],
            timings=timings,
        )

    def Segment(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC names)
        self.requests.append(request)
        if self.unavailable_first > 0:
            self.unavailable_first -= 1
            context.set_trailing_metadata((("retry-after-ms", "0"),))
            context.abort(grpc.StatusCode.UNAVAILABLE, "queue full")
        if request.model != "yolact_shapes":
            context.set_trailing_metadata((("maskserve-error-code", "model_not_found"),))
            context.abort(grpc.StatusCode.NOT_FOUND, f"no model {request.model!r}")
        return self.response(request.image, request.options)

    def SegmentStream(self, request_iterator: Any, context: Any) -> Any:  # noqa: N802 (gRPC names)
        options = pb.SegmentOptions()
        for frame in request_iterator:
            self.frames.append(frame)
            if frame.HasField("options"):
                options = frame.options
            if frame.image == b"bad":
                error = pb.FrameError(code=3, reason="invalid_image", message="not an image")
                yield pb.StreamResult(frame_id=frame.frame_id, error=error)
            elif frame.image == b"stale":
                yield pb.StreamResult(frame_id=frame.frame_id, skipped=True)
            else:
                result = self.response(frame.image, options)
                yield pb.StreamResult(frame_id=frame.frame_id, result=result)

    def ListModels(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC names)
        return pb.ListModelsResponse(models=self.models)

    def GetModel(self, request: Any, context: Any) -> Any:  # noqa: N802 (gRPC names)
        for model in self.models:
            if model.name == request.name:
                return model
        context.abort(grpc.StatusCode.NOT_FOUND, f"no model {request.name!r}")
        return None


class StubGrpcServer:
    def __init__(self) -> None:
        self.servicer = StubServicer()
        limit = 64 * 1024 * 1024
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=4),
            options=[
                ("grpc.max_send_message_length", limit),
                ("grpc.max_receive_message_length", limit),
            ],
        )
        pb_grpc.add_SegmentationServicer_to_server(self.servicer, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop(grace=None).wait()
