"""The browser page at ``/`` and an offline Swagger UI at ``/docs``.

Static files shipped in the package (``static/``: no build step, no CDN, works offline):
the page lists models, sends an image to ``/v1/models/{m}/segment`` (or webcam frames to
the WebSocket stream) and draws the masks decoded from their RLE in the browser.

Swagger UI's assets come from the ``fastapi-offline`` package (Swagger UI 5, Apache-2.0,
in an MIT wrapper) instead of FastAPI's CDN default. Swagger UI 4 (what
``swagger-ui-bundle`` ships) cannot render FastAPI's OpenAPI 3.1 document.
"""

from __future__ import annotations

import importlib.resources
import logging
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from maskserve.settings import Settings

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
DOCS_ASSETS = "/docs/assets"
SWAGGER_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png")
# validatorUrl: Swagger UI would otherwise show a badge fetched from validator.swagger.io
SWAGGER_PARAMETERS = {"validatorUrl": None, "tryItOutEnabled": True}


def swagger_assets() -> Path | None:
    """The folder holding Swagger UI's bundle, or None where the package is missing."""
    try:
        folder = Path(str(importlib.resources.files("fastapi_offline") / "static"))
    except ModuleNotFoundError:
        return None
    return folder if all((folder / name).is_file() for name in SWAGGER_FILES) else None


def add_web_routes(app: FastAPI, settings: Settings) -> None:
    """Register ``/``, ``/static/*``, ``/docs`` and ``/docs/assets/*``.

    ``/`` and ``/static/`` are open with API keys by default (``auth_open_paths``): the
    page has a key field and sends the key itself."""

    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.add_api_route("/", page, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    assets = swagger_assets()
    if assets is None:
        log.warning("fastapi-offline is not installed: no Swagger UI at /docs")
        return

    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")  # behind a proxy that strips a prefix
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title="maskserve API",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            swagger_ui_parameters=SWAGGER_PARAMETERS,
        )

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="swagger-ui")
