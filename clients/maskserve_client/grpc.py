"""gRPC clients for the ``maskserve.v1.Segmentation`` service (sync and asyncio).

:meth:`GrpcClient.stream` sends frames over one ``SegmentStream`` call and yields each
frame's result in the order sent, tagged with the caller's frame id and the latency seen by
the client.  Model and options travel on the first frame only, as the contract allows.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Self

import grpc
import grpc.aio

from maskserve_client._convert import (
    HTTP_STATUS,
    GrpcMaskFormat,
    error_of,
    model_info_of,
    options_message,
    result_of,
    retry_after_of,
)
from maskserve_client._streaming import Frame, StreamState, as_async, first_frame
from maskserve_client.errors import MaskserveClientError
from maskserve_client.gen import segment_pb2 as pb
from maskserve_client.gen.segment_pb2_grpc import SegmentationStub
from maskserve_client.images import ImageInput, image_bytes
from maskserve_client.retry import RetryPolicy
from maskserve_client.types import DEFAULT_MODEL, ModelInfo, SegmentResult, StreamResult

__all__ = ["HTTP_STATUS", "MAX_MESSAGE_BYTES", "AsyncGrpcClient", "Frame", "GrpcClient"]

DEFAULT_TARGET = "127.0.0.1:50051"
DEFAULT_TIMEOUT_S = 30.0
#: Both directions: a large PNG in, many full-resolution masks out.
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHANNEL_OPTIONS: tuple[tuple[str, Any], ...] = (
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
)


class _Base:
    def __init__(self, model: str, timeout: float, retry: RetryPolicy | None) -> None:
        self.default_model = model
        self.timeout = timeout
        self.retry = retry or RetryPolicy()

    def _request(
        self,
        image: ImageInput,
        model: str | None,
        score_threshold: float | None,
        max_detections: int | None,
        classes: Iterable[int] | None,
        mask_format: GrpcMaskFormat,
        polygon_tolerance: float | None = None,
    ) -> pb.SegmentRequest:
        options = options_message(
            score_threshold, max_detections, classes, mask_format, polygon_tolerance
        )
        return pb.SegmentRequest(
            model=model or self.default_model, image=image_bytes(image), options=options
        )

    def _wait(self, attempt: int, exc: grpc.RpcError) -> tuple[MaskserveClientError, float | None]:
        error = error_of(exc)
        return error, self.retry.delay(attempt, error.status, retry_after_of(exc))


class GrpcClient(_Base):
    """Synchronous gRPC client.

    Args:
        target: ``host:port`` of the server's gRPC port.
        model: the model used when a call names none.
        timeout: default deadline in seconds of unary calls (streams have none by default).
        retry: how UNAVAILABLE / RESOURCE_EXHAUSTED unary calls are retried.
        credentials: TLS credentials; None = plaintext.
        options: extra channel options, appended to the 64 MiB message-size limits.
        api_key: sent as ``authorization: Bearer <key>`` metadata on every call.
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        model: str = DEFAULT_MODEL,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
        api_key: str | None = None,
    ) -> None:
        super().__init__(model, timeout, retry)
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else None
        channel_options = [*CHANNEL_OPTIONS, *options]
        if credentials is None:
            self._channel = grpc.insecure_channel(target, options=channel_options)
        else:
            self._channel = grpc.secure_channel(target, credentials, options=channel_options)
        self._stub = SegmentationStub(self._channel)

    def segment(
        self,
        image: ImageInput,
        *,
        model: str | None = None,
        score_threshold: float | None = None,
        max_detections: int | None = None,
        classes: Iterable[int] | None = None,
        mask_format: GrpcMaskFormat = "rle",
        timeout: float | None = None,
        polygon_tolerance: float | None = None,
    ) -> SegmentResult:
        """Segment one image; ``mask_format`` may also be ``"runs"`` (raw run lengths) or
        ``"polygon"`` (outlines with holes, simplified to ``polygon_tolerance`` pixels)."""
        request = self._request(
            image, model, score_threshold, max_detections, classes, mask_format, polygon_tolerance
        )
        return result_of(self._call(self._stub.Segment, request, timeout))

    def models(self) -> list[ModelInfo]:
        reply = self._call(self._stub.ListModels, pb.ListModelsRequest(), None)
        return [model_info_of(m) for m in reply.models]

    def model(self, name: str) -> ModelInfo:
        return model_info_of(self._call(self._stub.GetModel, pb.GetModelRequest(name=name), None))

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the channel connects; False if it did not within ``timeout`` seconds."""
        try:
            grpc.channel_ready_future(self._channel).result(timeout=timeout)
        except grpc.FutureTimeoutError:
            return False
        return True

    def stream(
        self,
        frames: Iterable[Frame],
        *,
        model: str | None = None,
        score_threshold: float | None = None,
        max_detections: int | None = None,
        classes: Iterable[int] | None = None,
        mask_format: GrpcMaskFormat = "rle",
        skip_stale: bool = False,
        timeout: float | None = None,
    ) -> Iterator[StreamResult]:
        """Results of ``frames`` over one ``SegmentStream`` call, in order.

        ``frames`` is consumed on a gRPC thread, as fast as the server's flow control
        allows; an exception it raises is re-raised here.  Stopping the iteration early
        cancels the call.  ``timeout`` bounds the whole stream (None = no deadline).
        """
        state = StreamState(
            first_frame(
                model or self.default_model,
                score_threshold,
                max_detections,
                classes,
                mask_format,
                skip_stale,
            )
        )

        def requests() -> Iterator[pb.StreamFrame]:
            try:
                for index, frame in enumerate(frames):
                    yield state.message(index, frame)
            except Exception as exc:
                state.failure = exc
                raise

        call = self._stub.SegmentStream(requests(), timeout=timeout, metadata=self._metadata)
        try:
            for reply in call:
                yield state.result(reply)
        except grpc.RpcError as exc:
            if state.failure is not None:
                raise state.failure from None
            raise error_of(exc) from None
        finally:
            call.cancel()

    def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        attempt = 0
        while True:
            try:
                deadline = self.timeout if timeout is None else timeout
                return method(request, timeout=deadline, metadata=self._metadata)
            except grpc.RpcError as exc:
                error, wait = self._wait(attempt, exc)
                if wait is None:
                    raise error from None
            time.sleep(wait)
            attempt += 1

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncGrpcClient(_Base):
    """The asyncio twin of :class:`GrpcClient`; create it inside the event loop using it."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        model: str = DEFAULT_MODEL,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
        api_key: str | None = None,
    ) -> None:
        super().__init__(model, timeout, retry)
        self._metadata = (("authorization", f"Bearer {api_key}"),) if api_key else None
        channel_options = [*CHANNEL_OPTIONS, *options]
        if credentials is None:
            self._channel = grpc.aio.insecure_channel(target, options=channel_options)
        else:
            self._channel = grpc.aio.secure_channel(target, credentials, options=channel_options)
        self._stub = SegmentationStub(self._channel)

    async def segment(
        self,
        image: ImageInput,
        *,
        model: str | None = None,
        score_threshold: float | None = None,
        max_detections: int | None = None,
        classes: Iterable[int] | None = None,
        mask_format: GrpcMaskFormat = "rle",
        timeout: float | None = None,
        polygon_tolerance: float | None = None,
    ) -> SegmentResult:
        request = self._request(
            image, model, score_threshold, max_detections, classes, mask_format, polygon_tolerance
        )
        return result_of(await self._call(self._stub.Segment, request, timeout))

    async def models(self) -> list[ModelInfo]:
        reply = await self._call(self._stub.ListModels, pb.ListModelsRequest(), None)
        return [model_info_of(m) for m in reply.models]

    async def model(self, name: str) -> ModelInfo:
        request = pb.GetModelRequest(name=name)
        return model_info_of(await self._call(self._stub.GetModel, request, None))

    async def stream(
        self,
        frames: Iterable[Frame] | AsyncIterable[Frame],
        *,
        model: str | None = None,
        score_threshold: float | None = None,
        max_detections: int | None = None,
        classes: Iterable[int] | None = None,
        mask_format: GrpcMaskFormat = "rle",
        skip_stale: bool = False,
        timeout: float | None = None,
    ) -> AsyncIterator[StreamResult]:
        """See :meth:`GrpcClient.stream`; ``frames`` may also be an async iterable."""
        state = StreamState(
            first_frame(
                model or self.default_model,
                score_threshold,
                max_detections,
                classes,
                mask_format,
                skip_stale,
            )
        )
        call = self._stub.SegmentStream(timeout=timeout, metadata=self._metadata)
        writer = asyncio.ensure_future(self._write(call, frames, state))
        try:
            async for reply in call:
                yield state.result(reply)
            await writer
        except (grpc.RpcError, asyncio.CancelledError) as exc:
            # A failing ``frames`` cancels the call: report that failure, not the cancel.
            if state.failure is not None:
                raise state.failure from None
            if isinstance(exc, asyncio.CancelledError):
                raise
            raise error_of(exc) from None
        finally:
            writer.cancel()
            call.cancel()

    @staticmethod
    async def _write(
        call: Any, frames: Iterable[Frame] | AsyncIterable[Frame], state: StreamState
    ) -> None:
        """Feed ``frames`` to the call; a failure of ``frames`` itself ends the stream."""
        try:
            index = 0
            async for frame in as_async(frames):
                message = state.message(index, frame)
                index += 1
                try:
                    await call.write(message)
                except (grpc.RpcError, asyncio.InvalidStateError):
                    return  # the call has ended; the reader reports its status
            await call.done_writing()
        except (grpc.RpcError, asyncio.InvalidStateError):
            return
        except Exception as exc:
            state.failure = exc
            call.cancel()

    async def _call(self, method: Any, request: Any, timeout: float | None) -> Any:
        attempt = 0
        while True:
            try:
                deadline = self.timeout if timeout is None else timeout
                return await method(request, timeout=deadline, metadata=self._metadata)
            except grpc.RpcError as exc:
                error, wait = self._wait(attempt, exc)
                if wait is None:
                    raise error from None
            await asyncio.sleep(wait)
            attempt += 1

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
