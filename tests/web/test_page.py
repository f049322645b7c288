"""The page and Swagger UI are served from the package, with nothing fetched from elsewhere."""

from __future__ import annotations

import re

import httpx
from api_harness import RunningServer

EXTERNAL = re.compile(r"(?:https?:)?//(?!127\.0\.0\.1|localhost)[\w.-]+\.[a-z]{2,}", re.I)
ASSETS = {
    "/static/app.js": "javascript",
    "/static/rle.js": "javascript",
    "/static/webcam.js": "javascript",
    "/static/style.css": "text/css",
}


def test_the_page_and_its_assets(web_server: RunningServer) -> None:
    page = httpx.get(web_server.http_url + "/", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert not EXTERNAL.search(page.text)
    for path, kind in ASSETS.items():
        assert path in page.text
        asset = httpx.get(web_server.http_url + path, timeout=30)
        assert asset.status_code == 200 and kind in asset.headers["content-type"], path
        assert not EXTERNAL.search(asset.text), path


def test_swagger_ui_works_offline(web_server: RunningServer) -> None:
    docs = httpx.get(web_server.http_url + "/docs", timeout=30)
    assert docs.status_code == 200
    scripts = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
    assert scripts and all(s.startswith("/docs/assets/") for s in scripts), scripts
    for path in scripts:
        assert httpx.get(web_server.http_url + path, timeout=30).status_code == 200, path
    assert "/openapi.json" in docs.text
    assert httpx.get(web_server.http_url + "/redoc", timeout=30).status_code == 404
