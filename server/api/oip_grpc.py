"""The Open Inference Protocol over gRPC: ``inference.GRPCInferenceService``.

A thin adapter beside ``maskserve.v1.Segmentation`` on the same port, through the same
service (batcher, workers, metrics with ``protocol="oip"``). Answers come from
:mod:`.oip_core` (as for ``/v2`` over HTTP), converted to protobuf with ``json_format``.
``ModelStreamInfer`` answers in request order and reports a request's error inside the
stream (``error_message``), as the protocol says, without ending it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
from google.protobuf import json_format

from maskserve.api import oip_core
from maskserve.api.errors import message_of, status_of
from maskserve.api.gen import oip_service_pb2 as pb
from maskserve.api.gen import oip_service_pb2_grpc as pb_grpc
from maskserve.api.grpc_context import deadline_of
from maskserve.api.oip_grpc_codec import (
    infer_response,
    parse_infer,
    parse_tensor_infer,
    tensor_infer_response,
)
from maskserve.api.oip_tensors import result_tensors
from maskserve.errors import MaskserveError

if TYPE_CHECKING:
    from maskserve.service import SegmentationService

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
STREAM_IN_FLIGHT = 8
"""Requests of one ``ModelStreamInfer`` call being served at once; the reader stops pulling
from the client beyond that, so a client that never reads cannot grow server memory."""


class OipServicer(pb_grpc.GRPCInferenceServiceServicer):
    def __init__(self, service: SegmentationService, overload_status: str) -> None:
        self._service = service
        self._overload_status = overload_status

    async def ServerLive(self, request: Any, context: Any) -> pb.ServerLiveResponse:  # noqa: N802
        return pb.ServerLiveResponse(live=True)

    async def ServerReady(self, request: Any, context: Any) -> pb.ServerReadyResponse:  # noqa: N802
        return pb.ServerReadyResponse(ready=self._service.ready)

    async def ModelReady(  # noqa: N802
        self, request: pb.ModelReadyRequest, context: Any
    ) -> pb.ModelReadyResponse:
        try:
            self._service.get_model(request.name)
        except MaskserveError:
            return pb.ModelReadyResponse(ready=False)
        return pb.ModelReadyResponse(ready=True)

    async def ServerMetadata(self, request: Any, context: Any) -> pb.ServerMetadataResponse:  # noqa: N802
        return json_format.ParseDict(oip_core.server_metadata(), pb.ServerMetadataResponse())

    async def ModelMetadata(  # noqa: N802
        self, request: pb.ModelMetadataRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelMetadataResponse:
        answer = await self._call(context, oip_core.model_metadata, request.name)
        return json_format.ParseDict(answer, pb.ModelMetadataResponse())

    async def ModelConfig(  # noqa: N802
        self, request: pb.ModelConfigRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelConfigResponse:
        answer = await self._call(context, oip_core.model_config, request.name)
        return pb.ModelConfigResponse(config=json_format.ParseDict(answer, pb.ModelConfig()))

    async def ModelStatistics(  # noqa: N802
        self, request: pb.ModelStatisticsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelStatisticsResponse:
        answer = await self._call(context, oip_core.statistics, request.name or None)
        return json_format.ParseDict(answer, pb.ModelStatisticsResponse())

    async def RepositoryIndex(  # noqa: N802
        self, request: pb.RepositoryIndexRequest, context: Any
    ) -> pb.RepositoryIndexResponse:
        models = oip_core.repository_index(self._service, request.ready)
        return json_format.ParseDict({"models": models}, pb.RepositoryIndexResponse())

    async def ModelInfer(  # noqa: N802
        self, request: pb.ModelInferRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInferResponse:
        try:
            return await self._infer(request, deadline_of(context))
        except Exception as exc:
            await self._abort(context, exc)

    async def ModelStreamInfer(  # noqa: N802
        self, request_iterator: AsyncIterator[pb.ModelInferRequest], context: Any
    ) -> AsyncIterator[pb.ModelStreamInferResponse]:
        pending: asyncio.Queue[asyncio.Task[pb.ModelStreamInferResponse] | None]
        pending = asyncio.Queue(STREAM_IN_FLIGHT)
        reader = asyncio.create_task(self._read_stream(request_iterator, pending))
        try:
            while (task := await pending.get()) is not None:
                yield await task
            await reader  # re-raises a failure to read the stream
        finally:
            reader.cancel()
            while not pending.empty():
                if (task := pending.get_nowait()) is not None:
                    task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def _read_stream(
        self,
        requests: AsyncIterator[pb.ModelInferRequest],
        pending: asyncio.Queue[asyncio.Task[pb.ModelStreamInferResponse] | None],
    ) -> None:
        try:
            async for request in requests:
                await pending.put(asyncio.create_task(self._stream_one(request)))
        finally:
            await pending.put(None)

    async def _stream_one(self, request: pb.ModelInferRequest) -> pb.ModelStreamInferResponse:
        try:
            return pb.ModelStreamInferResponse(infer_response=await self._infer(request, None))
        except Exception as exc:
            if status_of(exc, self._overload_status).grpc is grpc.StatusCode.INTERNAL:
                log.error("OIP stream request failed", exc_info=exc)
            return pb.ModelStreamInferResponse(error_message=message_of(exc))

    async def _infer(
        self, request: pb.ModelInferRequest, deadline: float | None
    ) -> pb.ModelInferResponse:
        model = request.model_name
        try:
            signature = self._service.tensor_signature(model)
            if signature is not None:
                tensors = parse_tensor_infer(request, signature)
                _, timeout, priority = oip_core.request_options(tensors.parameters)
            else:
                parsed, is_raw = parse_infer(request)
                options, timeout, priority = oip_core.request_options(parsed.parameters)
        except MaskserveError as exc:
            self._service.count_refused(model, oip_core.PROTOCOL, exc.code)
            raise
        if timeout is not None:
            deadline = timeout if deadline is None else min(deadline, timeout)
        if signature is not None:
            outputs = await self._service.infer_tensors(
                model,
                tensors.inputs,
                deadline=deadline,
                protocol=oip_core.PROTOCOL,
                priority=priority,
            )
            return tensor_infer_response(model, tensors, outputs)
        results = await asyncio.gather(
            *(
                self._service.segment(
                    model,
                    image,
                    options,
                    deadline=deadline,
                    protocol=oip_core.PROTOCOL,
                    priority=priority,
                )
                for image in parsed.images
            )
        )
        return infer_response(model, parsed, result_tensors(list(results)), is_raw)

    async def _call(
        self, context: grpc.aio.ServicerContext, build: Callable[..., Any], *args: Any
    ) -> Any:
        try:
            return build(self._service, *args)
        except Exception as exc:
            await self._abort(context, exc)

    async def _abort(self, context: grpc.aio.ServicerContext, exc: Exception) -> NoReturn:
        status = status_of(exc, self._overload_status)
        if status.grpc is grpc.StatusCode.INTERNAL:
            log.error("OIP gRPC request failed", exc_info=exc)
        await context.abort(status.grpc, message_of(exc))
        raise AssertionError("unreachable: context.abort raises")
