"""The browser page served at ``/``: placeholder until implemented."""

from __future__ import annotations

from fastapi import FastAPI

from maskserve.settings import Settings


def add_web_routes(app: FastAPI, settings: Settings) -> None:
    """Register ``/`` and the page's static files (not implemented yet)."""
