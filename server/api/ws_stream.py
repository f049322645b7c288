"""WebSocket frame streams: ``/v1/models/{model}/stream``, gRPC ``SegmentStream`` for browsers.

Connect with the segment endpoint's options in the query (``score_threshold``,
``max_detections``, ``classes``, ``mask_format``, ``polygon_tolerance``) and
``skip_stale=1`` for live video. Each BINARY message is one frame (encoded JPEG, PNG or
WebP); a TEXT message ``{"frame_id": N}`` just before it sets that frame's id, else ids
count 0, 1, 2, … on from the last one. Each frame is answered, in frame order, by one TEXT
message: ``{"frame_id", "result": <the segment endpoint's JSON>}``, ``{"frame_id",
"skipped": true}`` or ``{"frame_id", "error": {"code", "message", "status"}}``; a frame's
error never ends the stream. Invalid options or an unknown model: one error message, then
close code 1008; a message larger than ``max_body_bytes``: close code 1009 (uvicorn's
``ws_max_size``). Ordering, bounds (a client that never reads stops being read: uvicorn
reads the socket only while the stream pulls messages), stale-skipping and the shutdown
(frames taken in are finished, later ones refused) are
:class:`~maskserve.api.frame_stream.FrameStream`'s.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from maskserve.api.errors import code_of, message_of, status_of
from maskserve.api.frame_stream import Frame, FrameStream
from maskserve.errors import InvalidOptionError, MaskserveError
from maskserve.options import DEFAULT_POLYGON_TOLERANCE, SegmentOptions
from maskserve.result_json import result_json
from maskserve.results import ImageResult

if TYPE_CHECKING:
    from maskserve.metrics import Metrics
    from maskserve.service import SegmentationService
    from maskserve.settings import Settings

log = logging.getLogger(__name__)

POLICY_VIOLATION = 1008
REASON_BYTES = 120  # a close reason has at most 123 bytes
Incoming = tuple[int, bytes | None, str | None]  # (frame id, image, or a problem with it)


class WsFrameStream(FrameStream[Incoming, str]):
    """One connection's frames; ``sending`` is True while an answer is being sent (when
    seen from the loop: the client does not read and the socket pushes back)."""

    protocol = "ws"

    def __init__(
        self, service: SegmentationService, model: str, options: SegmentOptions, **limits: Any
    ) -> None:
        super().__init__(service, **limits)
        self.model, self.options = model, options
        self.sending = False

    def parse(self, message: Incoming) -> Frame[str]:
        frame_id, image, problem = message
        frame: Frame[str] = Frame(frame_id, self.model, image or b"", self.options)
        if problem is not None:
            frame.problem = InvalidOptionError(problem)
        return frame

    def answer(self, frame: Frame[str], result: ImageResult) -> str:
        return json.dumps({"frame_id": frame.frame_id, "result": result_json(result)})

    def failure(self, frame_id: int, exc: BaseException) -> str:
        status = status_of(exc, self._overload_status)
        error = {"code": code_of(exc), "message": message_of(exc), "status": status.http}
        return json.dumps({"frame_id": frame_id, "error": error})

    def skip(self, frame_id: int) -> str:
        return json.dumps({"frame_id": frame_id, "skipped": True})


async def incoming(websocket: WebSocket) -> AsyncIterator[Incoming]:
    """The client's frames until it closes: ids from ``{"frame_id": N}`` text messages."""
    next_id = 0
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("bytes") is not None:
            yield next_id, message["bytes"], None
            next_id += 1
            continue
        try:
            announced = json.loads(message.get("text") or "")
            next_id = int(announced["frame_id"])
            if next_id < 0:
                raise ValueError("negative")
        except (ValueError, TypeError, KeyError) as exc:
            yield next_id, None, f'a text message must be {{"frame_id": N}}, N >= 0 ({exc})'
            next_id += 1


def query_options(params: Any) -> tuple[SegmentOptions, bool]:
    """The segment endpoint's options from the connection's query, and ``skip_stale``."""
    from maskserve.api.rest import parse_classes

    try:
        tolerance = params.get("polygon_tolerance")
        options = SegmentOptions(
            score_threshold=_number(params.get("score_threshold"), float),
            max_detections=_number(params.get("max_detections"), int),
            classes=parse_classes(params.get("classes")),
            mask_format=params.get("mask_format", "rle"),
            polygon_tolerance=(
                DEFAULT_POLYGON_TOLERANCE if tolerance is None else float(tolerance)
            ),
        )
    except ValueError as exc:
        raise InvalidOptionError(f"invalid query parameter: {exc}") from None
    skip = params.get("skip_stale", "0").lower() in ("1", "true", "yes")
    return options, skip


def _number(text: str | None, kind: type) -> Any:
    return None if text is None else kind(text)


def stream_router(service: SegmentationService, settings: Settings, metrics: Metrics) -> APIRouter:
    """``/v1/models/{model}/stream``."""

    async def stream(websocket: WebSocket, model: str) -> None:
        await websocket.accept()
        try:
            options, skip_stale = query_options(websocket.query_params)
            service.get_model(model)
        except MaskserveError as exc:
            await _refuse(websocket, service, model, exc)
            return
        frames = WsFrameStream(
            service,
            model,
            options,
            skip_stale=skip_stale,
            overload_status=settings.overload_status,
        )
        frames.start(incoming(websocket))
        try:
            while (answer := await frames.next_result()) is not None:
                frames.sending = True
                await websocket.send_text(answer)
                frames.sending = False
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:  # the client went away
            log.debug("stream client gone: %s", exc)
        finally:
            frames.close()
        if websocket.client_state is WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, OSError):
                await websocket.close()

    router = APIRouter()
    router.add_api_websocket_route("/v1/models/{model}/stream", stream)
    return router


async def _refuse(
    websocket: WebSocket, service: SegmentationService, model: str, exc: MaskserveError
) -> None:
    """Invalid options or an unknown model: one error message, then close code 1008."""
    service.count_refused(model, WsFrameStream.protocol, exc.code)
    error = {"code": code_of(exc), "message": message_of(exc)}
    await websocket.send_text(json.dumps({"error": error}))
    reason = message_of(exc).encode()[:REASON_BYTES].decode(errors="ignore")
    await websocket.close(POLICY_VIOLATION, reason=reason)
