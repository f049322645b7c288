"""REST clients (sync :class:`Client`, async :class:`AsyncClient`) over httpx.

Both build the same requests and parse the same responses; they differ only in how they
send and sleep between retries.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal, Self
from urllib.parse import quote

import httpx

from maskserve_client.errors import MaskserveClientError
from maskserve_client.images import ImageInput, encode_image
from maskserve_client.retry import RetryPolicy
from maskserve_client.types import DEFAULT_MODEL, ModelInfo, SegmentResult

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT_S = 30.0
#: Extra client-side wait beyond a request's server-side ``timeout``, so the server's own
#: deadline error (with its code) arrives before the client gives up on the connection.
DEADLINE_GRACE_S = 2.0

MaskFormat = Literal["rle", "polygon", "none"]


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    params: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None

    def kwargs(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"params": self.params, "headers": self.headers}
        if self.content is not None:
            extra["content"] = self.content
        if self.timeout is not None:
            extra["timeout"] = self.timeout
        return extra


def _segment_request(
    image: ImageInput,
    model: str,
    score_threshold: float | None,
    max_detections: int | None,
    classes: Iterable[int] | None,
    mask_format: MaskFormat,
    timeout: float | None,
    polygon_tolerance: float | None = None,
) -> _Request:
    data, content_type = encode_image(image)
    params = {"mask_format": mask_format}
    if polygon_tolerance is not None:
        params["polygon_tolerance"] = repr(float(polygon_tolerance))
    if score_threshold is not None:
        params["score_threshold"] = repr(float(score_threshold))
    if max_detections is not None:
        params["max_detections"] = str(int(max_detections))
    if classes is not None:
        params["classes"] = ",".join(str(int(c)) for c in classes)
    if timeout is not None:
        params["timeout"] = repr(float(timeout))
    return _Request(
        "POST",
        f"/v1/models/{quote(model, safe='')}/segment",
        params=params,
        content=data,
        headers={"content-type": content_type},
        timeout=None if timeout is None else timeout + DEADLINE_GRACE_S,
    )


def _error_of(response: httpx.Response) -> MaskserveClientError:
    """``{"error": {"code", "message"}}`` → the exception; any other body is kept as text."""
    try:
        body = response.json()
        error = body["error"]
        return MaskserveClientError(response.status_code, str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        text = response.text.strip()[:500] or response.reason_phrase
        return MaskserveClientError(response.status_code, f"http_{response.status_code}", text)


def _transport_error(exc: httpx.HTTPError) -> MaskserveClientError:
    code = "timeout" if isinstance(exc, httpx.TimeoutException) else "transport_error"
    return MaskserveClientError(0, code, f"{type(exc).__name__}: {exc}")


def _json(response: httpx.Response) -> Any:
    if response.is_error:
        raise _error_of(response)
    try:
        return response.json()
    except ValueError:
        raise MaskserveClientError(
            response.status_code, "bad_response", "the server's response is not JSON"
        ) from None


def _model_list(body: Any) -> list[ModelInfo]:
    items = body.get("models", []) if isinstance(body, Mapping) else body
    return [ModelInfo.from_json(item) for item in items]


def _model_info(body: Any) -> ModelInfo:
    """The model's description, flattening ``{"model": {...}, ...}`` if the server nests it."""
    if isinstance(body, Mapping) and isinstance(body.get("model"), Mapping):
        return ModelInfo.from_json({**body, **body["model"]})
    return ModelInfo.from_json(body)


class _Base:
    def __init__(self, model: str, retry: RetryPolicy | None) -> None:
        self.default_model = model
        self.retry = retry or RetryPolicy()

    def _backoff(self, attempt: int, response: httpx.Response) -> float | None:
        return self.retry.delay(attempt, response.status_code, response.headers.get("retry-after"))


def _with_key(headers: Mapping[str, str] | None, api_key: str | None) -> dict[str, str]:
    merged = dict(headers or {})
    if api_key:
        merged["authorization"] = f"Bearer {api_key}"
    return merged


class Client(_Base):
    """Synchronous REST client; thread-safe, so one instance can serve a thread pool.

    Args:
        base_url: the server's HTTP address.
        model: the model used when a call names none.
        timeout: client-side seconds per HTTP request (connect, read, write, pool).
        retry: how overloaded responses (503/429) are retried; ``NO_RETRY`` disables it.
        headers: sent with every request (e.g. authentication added by a proxy).
        api_key: sent as ``Authorization: Bearer <key>`` with every request.
    """

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        model: str = DEFAULT_MODEL,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        max_connections: int = 32,
        api_key: str | None = None,
    ) -> None:
        super().__init__(model, retry)
        headers = _with_key(headers, api_key)
        limits = httpx.Limits(max_connections=max_connections)
        self._http = httpx.Client(
            base_url=base_url, timeout=timeout, headers=headers, limits=limits
        )

    def segment(
        self,
        image: ImageInput,
        *,
        model: str | None = None,
        score_threshold: float | None = None,
        max_detections: int | None = None,
        classes: Iterable[int] | None = None,
        mask_format: MaskFormat = "rle",
        timeout: float | None = None,
        polygon_tolerance: float | None = None,
    ) -> SegmentResult:
        """Segment one image: a path, encoded bytes (JPEG/PNG/WebP) or RGB uint8 pixels.

        ``timeout`` is the server-side deadline in seconds for this request.
        ``mask_format="polygon"`` gives :attr:`Detection.polygons` (outlines with holes,
        simplified to ``polygon_tolerance`` pixels, the server's default 1.0 when None).
        """
        request = _segment_request(
            image,
            model or self.default_model,
            score_threshold,
            max_detections,
            classes,
            mask_format,
            timeout,
            polygon_tolerance,
        )
        return SegmentResult.from_json(_json(self._send(request)))

    def models(self) -> list[ModelInfo]:
        return _model_list(_json(self._send(_Request("GET", "/v1/models"))))

    def model(self, name: str) -> ModelInfo:
        return _model_info(_json(self._send(_Request("GET", f"/v1/models/{quote(name, safe='')}"))))

    def ready(self) -> bool:
        """True when the server reports ready (``/readyz``); False also if unreachable."""
        return self._probe("/readyz")

    def healthy(self) -> bool:
        """True when the server process is alive (``/healthz``); False if unreachable."""
        return self._probe("/healthz")

    def _probe(self, path: str) -> bool:
        try:
            return self._http.get(path).is_success
        except httpx.HTTPError:
            return False

    def _send(self, request: _Request) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = self._http.request(request.method, request.path, **request.kwargs())
            except httpx.HTTPError as exc:
                raise _transport_error(exc) from exc
            wait = self._backoff(attempt, response)
            if wait is None:
                return response
            time.sleep(wait)
            attempt += 1

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class AsyncClient(_Base):
    """The asyncio twin of :class:`Client` (same arguments, awaitable methods)."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        *,
        model: str = DEFAULT_MODEL,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        max_connections: int = 32,
        api_key: str | None = None,
    ) -> None:
        super().__init__(model, retry)
        headers = _with_key(headers, api_key)
        limits = httpx.Limits(max_connections=max_connections)
        self._http = httpx.AsyncClient(
            base_url=base_url, timeout=timeout, headers=headers, limits=limits
        )

    async def segment(
        self,
        image: ImageInput,
        *,
        model: str | None = None,
        score_threshold: float | None = None,
        max_detections: int | None = None,
        classes: Iterable[int] | None = None,
        mask_format: MaskFormat = "rle",
        timeout: float | None = None,
        polygon_tolerance: float | None = None,
    ) -> SegmentResult:
        """See :meth:`Client.segment`."""
        request = _segment_request(
            image,
            model or self.default_model,
            score_threshold,
            max_detections,
            classes,
            mask_format,
            timeout,
            polygon_tolerance,
        )
        return SegmentResult.from_json(_json(await self._send(request)))

    async def models(self) -> list[ModelInfo]:
        return _model_list(_json(await self._send(_Request("GET", "/v1/models"))))

    async def model(self, name: str) -> ModelInfo:
        path = f"/v1/models/{quote(name, safe='')}"
        return _model_info(_json(await self._send(_Request("GET", path))))

    async def ready(self) -> bool:
        return await self._probe("/readyz")

    async def healthy(self) -> bool:
        return await self._probe("/healthz")

    async def _probe(self, path: str) -> bool:
        try:
            return (await self._http.get(path)).is_success
        except httpx.HTTPError:
            return False

    async def _send(self, request: _Request) -> httpx.Response:
        attempt = 0
        while True:
            try:
                response = await self._http.request(
                    request.method, request.path, **request.kwargs()
                )
            except httpx.HTTPError as exc:
                raise _transport_error(exc) from exc
            wait = self._backoff(attempt, response)
            if wait is None:
                return response
            await asyncio.sleep(wait)
            attempt += 1

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()
