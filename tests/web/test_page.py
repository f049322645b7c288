"""The page and Swagger UI are served from the package, with nothing fetched from elsewhere."""

from __future__ import annotations

import fnmatch
import re
import tomllib
from pathlib import Path

import httpx
from api_harness import RunningServer

from maskserve.web import STATIC

ROOT = Path(__file__).resolve().parents[2]
# a URL to some other host: scheme-relative too; 127.0.0.1 and localhost are this machine
EXTERNAL = re.compile(r"(?:https?:)?//(?!127\.0\.0\.1|localhost)[\w.-]+\.[a-z]{2,}", re.I)
REFERENCES = re.compile(r'(?:src|href)="([^"]+)"')
TYPES = {".js": "javascript", ".css": "text/css", ".png": "image/png"}


def fetch(server: RunningServer, path: str) -> httpx.Response:
    reply = httpx.get(server.http_url + path, timeout=30)
    assert reply.status_code == 200, (path, reply.status_code)
    return reply


def test_the_page_and_its_assets(web_server: RunningServer) -> None:
    page = fetch(web_server, "/")
    assert page.headers["content-type"].startswith("text/html")
    assert not EXTERNAL.search(page.text)
    assets = [r for r in REFERENCES.findall(page.text) if r.startswith("static/")]
    served = {f"static/{p.name}" for p in STATIC.iterdir() if p.suffix != ".html"}
    assert set(assets) == served  # every file referenced, none missing
    for path in assets:
        asset = fetch(web_server, "/" + path)
        assert TYPES[Path(path).suffix] in asset.headers["content-type"], path
        assert not EXTERNAL.search(asset.text), path
    assert httpx.get(web_server.http_url + "/static/nope.js", timeout=30).status_code == 404


def test_swagger_ui_works_offline(web_server: RunningServer) -> None:
    docs = fetch(web_server, "/docs")
    assert docs.headers["content-type"].startswith("text/html")
    assert not EXTERNAL.search(docs.text), EXTERNAL.search(docs.text)
    assert "validatorUrl" in docs.text  # else Swagger UI shows a badge from swagger.io
    assets = REFERENCES.findall(docs.text)
    assert len(assets) == 3 and all(a.startswith("/docs/assets/") for a in assets), assets
    for path in assets:
        asset = fetch(web_server, path)
        assert TYPES[Path(path).suffix] in asset.headers["content-type"], path
    openapi = fetch(web_server, "/openapi.json").json()
    assert "/v1/models/{model}/segment" in openapi["paths"]
    for path in ("/redoc", "/docs/oauth2-redirect"):
        assert httpx.get(web_server.http_url + path, timeout=30).status_code == 404, path


def test_static_files_ship_in_the_wheel() -> None:
    """Each file of server/web/static matches a package-data pattern (else an installed,
    non-editable maskserve would serve 404s)."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["package-data"]["maskserve.web.static"]
    for file in STATIC.iterdir():
        assert any(fnmatch.fnmatch(file.name, p) for p in patterns), file.name
