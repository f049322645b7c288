"""WebSocket streaming (``/v1/models/{model}/stream``): placeholder until implemented."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

if TYPE_CHECKING:
    from maskserve.service import SegmentationService
    from maskserve.settings import Settings


def add_stream_routes(app: FastAPI, service: SegmentationService, settings: Settings) -> None:
    """Register the WebSocket stream route (not implemented yet)."""
