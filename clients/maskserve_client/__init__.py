"""Client library for a maskserve instance-segmentation server (no torch needed).

REST: :class:`Client` / :class:`AsyncClient`; gRPC: :class:`GrpcClient` /
:class:`AsyncGrpcClient` (imported on first use).  Masks arrive as COCO RLE and are
decoded with :mod:`maskserve_client.rle` when :meth:`Detection.mask` is called (or, with
``mask_format="polygon"``, as :class:`PolygonMask`, filled by :mod:`maskserve_client.polygon`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from maskserve_client.errors import MaskserveClientError
from maskserve_client.polygon import Polygon, PolygonMask
from maskserve_client.rest import AsyncClient, Client
from maskserve_client.retry import NO_RETRY, RetryPolicy
from maskserve_client.types import Batching, Detection, ModelInfo, Rle, SegmentResult, StreamResult

if TYPE_CHECKING:
    from maskserve_client.grpc import AsyncGrpcClient, GrpcClient

__version__ = "0.1.0"

__all__ = [
    "NO_RETRY",
    "AsyncClient",
    "AsyncGrpcClient",
    "Batching",
    "Client",
    "Detection",
    "GrpcClient",
    "MaskserveClientError",
    "ModelInfo",
    "Polygon",
    "PolygonMask",
    "RetryPolicy",
    "Rle",
    "SegmentResult",
    "StreamResult",
]


def __getattr__(name: str) -> Any:
    """The gRPC clients load grpcio and the generated code only when first used."""
    if name in ("GrpcClient", "AsyncGrpcClient"):
        from maskserve_client import grpc as grpc_module

        return getattr(grpc_module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
