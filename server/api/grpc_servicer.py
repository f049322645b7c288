"""The gRPC face of the service: ``maskserve.v1.Segmentation``, health and reflection."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, NoReturn

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from maskserve.api.errors import code_of, message_of, retry_after_ms, status_of
from maskserve.api.gen import oip_service_pb2_grpc as oip_pb_grpc
from maskserve.api.gen import segment_pb2 as pb
from maskserve.api.gen import segment_pb2_grpc as pb_grpc
from maskserve.api.grpc_codec import model_info_to_proto, options_from_proto, result_to_proto
from maskserve.api.grpc_context import deadline_of
from maskserve.api.grpc_stream import DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_PENDING, FrameStream
from maskserve.api.oip_grpc import OipServicer
from maskserve.errors import MaskserveError

if TYPE_CHECKING:
    from maskserve.service import SegmentationService
    from maskserve.settings import Settings

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["Segmentation"].full_name
SKIP_STALE_METADATA = "skip-stale"
ERROR_CODE_METADATA = "maskserve-error-code"
RETRY_AFTER_METADATA = "retry-after-ms"


class SegmentationServicer(pb_grpc.SegmentationServicer):
    def __init__(
        self,
        service: SegmentationService,
        overload_status: str = "unavailable",
        stream_max_pending: int = DEFAULT_MAX_PENDING,
        stream_max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
    ) -> None:
        self._service = service
        self._overload_status = overload_status
        self._stream_max_pending = stream_max_pending
        self._stream_max_in_flight = stream_max_in_flight

    async def Segment(  # noqa: N802 (gRPC method names)
        self, request: pb.SegmentRequest, context: grpc.aio.ServicerContext
    ) -> pb.SegmentResponse:
        try:
            options = options_from_proto(request.options)
        except MaskserveError as exc:  # refused before the service: counted here
            self._service.count_refused(request.model, "grpc", exc.code)
            await self._abort(context, exc)
        try:
            result = await self._service.segment(
                request.model,
                request.image,
                options,
                deadline=deadline_of(context),
                protocol="grpc",
            )
        except Exception as exc:
            await self._abort(context, exc)
        return result_to_proto(result, request.options.mask_format)

    async def SegmentStream(  # noqa: N802 (gRPC method names)
        self, request_iterator: AsyncIterator[pb.StreamFrame], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.StreamResult]:
        metadata = dict(context.invocation_metadata() or ())
        stream = FrameStream(
            self._service,
            max_pending=self._stream_max_pending,
            max_in_flight=self._stream_max_in_flight,
            skip_stale=str(metadata.get(SKIP_STALE_METADATA, "")).lower() in ("1", "true", "yes"),
            deadline=deadline_of(context),
            overload_status=self._overload_status,
        )
        stream.start(request_iterator)
        try:
            while (result := await stream.next_result()) is not None:
                yield result
        finally:
            stream.close()

    async def ListModels(  # noqa: N802 (gRPC method names)
        self, request: pb.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListModelsResponse:
        try:
            models = [
                model_info_to_proto(info, self._service.model_config(info.name))
                for info in self._service.list_models()
            ]
        except Exception as exc:
            await self._abort(context, exc)
        return pb.ListModelsResponse(models=models)

    async def GetModel(  # noqa: N802 (gRPC method names)
        self, request: pb.GetModelRequest, context: grpc.aio.ServicerContext
    ) -> pb.ModelInfo:
        try:
            info = self._service.get_model(request.name)
            config = self._service.model_config(request.name)
        except Exception as exc:
            await self._abort(context, exc)
        return model_info_to_proto(info, config)

    async def _abort(self, context: grpc.aio.ServicerContext, exc: Exception) -> NoReturn:
        status = status_of(exc, self._overload_status)
        if status.grpc is grpc.StatusCode.INTERNAL:
            log.error("gRPC request failed", exc_info=exc)
        metadata: list[tuple[str, str]] = [(ERROR_CODE_METADATA, code_of(exc))]
        if status.retry_after:
            metadata.append((RETRY_AFTER_METADATA, retry_after_ms(exc)))
        await context.abort(status.grpc, message_of(exc), trailing_metadata=tuple(metadata))
        raise AssertionError("unreachable: context.abort raises")


def create_grpc_server(
    service: SegmentationService,
    settings: Settings,
    health_servicer: health.aio.HealthServicer,
    host: str | None = None,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
    credentials: grpc.ServerCredentials | None = None,
) -> tuple[grpc.aio.Server, int]:
    """A grpc.aio server (not started) with Segmentation, health and reflection, bound to
    ``host:settings.grpc_port``; returns it and the bound port (useful with port 0).

    The port is exclusive (``grpc.so_reuseport`` 0): grpcio shares ports by default, so a
    second server on the same port would start silently and take half of the calls."""
    size = settings.grpc_max_message_bytes
    server = grpc.aio.server(
        interceptors=list(interceptors),
        options=[
            ("grpc.max_send_message_length", size),
            ("grpc.max_receive_message_length", size),
            ("grpc.so_reuseport", 0),
            *connection_options(settings),
        ],
    )
    for register in GRPC_SERVICES:
        register(server, service, settings)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name)
    # OIP's descriptors live in a private pool (see scripts/gen_protos): not reflected.
    reflection.enable_server_reflection((*names, reflection.SERVICE_NAME), server)
    address = _address(host if host is not None else settings.http_host, settings.grpc_port)
    try:
        if credentials is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, credentials)
    except RuntimeError:  # grpcio reports a failed bind so in recent versions
        port = 0
    if port == 0:
        raise OSError(f"gRPC server could not bind {address} (in use?)")
    return server, port


def _add_segmentation(
    server: grpc.aio.Server, service: SegmentationService, settings: Settings
) -> None:
    pb_grpc.add_SegmentationServicer_to_server(
        SegmentationServicer(service, settings.overload_status), server
    )


def _add_oip(server: grpc.aio.Server, service: SegmentationService, settings: Settings) -> None:
    oip_pb_grpc.add_GRPCInferenceServiceServicer_to_server(
        OipServicer(service, settings.overload_status), server
    )


GRPC_SERVICES: list[Callable[[grpc.aio.Server, SegmentationService, Settings], None]] = [
    _add_segmentation,
    _add_oip,
]
"""The one seam for gRPC protocol adapters: each registers its servicer; all share the
server's interceptors (authentication, ...)."""


GRPC_KEEPALIVE_TIMEOUT_MS = 20_000


def connection_options(settings: Settings) -> list[tuple[str, int]]:
    """Keepalive pings find vanished clients; idle connections are closed (GOAWAY); past
    ``max_connections`` open connections, gRPC core closes a new one as it is accepted
    (the client sees UNAVAILABLE) while the served ones go on."""
    options = [
        ("grpc.keepalive_time_ms", int(settings.grpc_keepalive_s * 1000)),
        ("grpc.keepalive_timeout_ms", GRPC_KEEPALIVE_TIMEOUT_MS),
    ]
    if settings.max_connections > 0:
        options.append(("grpc.max_allowed_incoming_connections", settings.max_connections))
    if settings.grpc_max_connection_idle_s > 0:
        idle_ms = int(settings.grpc_max_connection_idle_s * 1000)
        options.append(("grpc.max_connection_idle_ms", idle_ms))
    return options


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def set_serving(health_servicer: health.aio.HealthServicer, serving: bool) -> None:
    """Report the overall server ("") and the Segmentation service as (NOT_)SERVING."""
    status = (
        health_pb2.HealthCheckResponse.SERVING
        if serving
        else health_pb2.HealthCheckResponse.NOT_SERVING
    )
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, status)
