"""The browser page at ``/`` and an offline Swagger UI at ``/docs``.

Static files shipped in the package (``static/``: no build step, no CDN, works offline):
the page lists models, sends an image to ``/v1/models/{m}/segment`` (or webcam frames to
the WebSocket stream) and draws the masks decoded from their RLE in the browser. Swagger
UI's assets come from the ``swagger-ui-bundle`` package instead of FastAPI's CDN default.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

from maskserve.settings import Settings

STATIC = Path(__file__).resolve().parent / "static"


def swagger_assets() -> Path | None:
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    return Path(str(swagger_ui_path))


def add_web_routes(app: FastAPI, settings: Settings) -> None:
    """Register ``/``, ``/static/*``, ``/docs`` and ``/docs/assets/*``."""

    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    app.add_api_route("/", page, methods=["GET"], include_in_schema=False)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    assets = swagger_assets()
    if assets is None:
        return

    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="maskserve API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )

    app.add_api_route("/docs", docs, methods=["GET"], include_in_schema=False)
    app.mount("/docs/assets", StaticFiles(directory=assets), name="swagger-ui")
