"""Composition root: Settings → Metrics → SegmentationService → REST + gRPC on one event loop.

Start-up: both listeners open at once (``/healthz`` answers, ``/readyz`` is 503 and gRPC
health NOT_SERVING) while the service loads and warms its workers; then ready.

Signals (SIGTERM and SIGINT alike; Kubernetes sends SIGTERM, then SIGKILL after its grace):

- **First**: graceful. ``/readyz`` turns 503 and gRPC health NOT_SERVING, new requests are
  refused (503 / UNAVAILABLE), and every request admitted before the signal may finish
  within ``drain_grace_s``; then uvicorn closes its listener and writes the last responses,
  gRPC stops, the service stops (anything still queued after the grace gets 503), and the
  process exits :data:`EXIT_OK`. During start-up there is nothing to drain: the loading is
  abandoned and the process exits :data:`EXIT_OK` at once.
- **Second**: stop now. The rest of the drain is skipped, whatever is still queued or
  computing is answered 503 / UNAVAILABLE ``model_not_ready`` at once, the connections
  are closed, and the process exits ``128 + signal number`` (143 for SIGTERM, 130 for
  SIGINT: the shell's code for "killed by that signal"), within :data:`FORCED_EXIT_S`
  even if a worker is stuck in a forward pass.

Other exit codes: :data:`EXIT_FAILED` when no model could be loaded or the HTTP server
died; 2 (``maskserve serve``) when a port cannot be bound or a setting is invalid.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import AsyncIterator, Iterator

import uvicorn
from fastapi import FastAPI
from grpc_health.v1 import health

from maskserve.api.grpc_servicer import create_grpc_server, set_serving
from maskserve.api.http_app import create_http_app
from maskserve.auth import ApiKeyInterceptor, ApiKeyMiddleware, ApiKeys
from maskserve.http_guard import GuardedHTTPProtocol, install_over_limit_answer
from maskserve.metrics import Metrics
from maskserve.service import SegmentationService
from maskserve.settings import Settings
from maskserve.tls import TlsFiles

log = logging.getLogger(__name__)

FINAL_GRACE_S = 5.0
"""After the drain: how long the last responses may take to be written out."""
FORCED_GRACE_S = 1.0
"""After a second signal: how long the 503s of the aborted requests may take to be written."""
FORCED_EXIT_S = 5.0
"""After a second signal the process exits within this, whatever is still running."""
EXIT_OK = 0
EXIT_FAILED = 1


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handling: the composition root owns the signals
    (uvicorn would stop listening at once, and re-raise the signal after serving)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class MaskserveServer:
    """The whole server process; ``await run()`` serves until stopped, returns the exit code."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.service = SegmentationService.from_settings(settings, self.metrics)
        self.http_app: FastAPI = create_http_app(
            self.service, settings, self.metrics, lifespan=self._lifespan
        )
        self.tls = TlsFiles.from_settings(settings)
        self.keys = ApiKeys.load(settings.api_keys_file, settings.api_keys)
        if self.keys:
            self.http_app.add_middleware(
                ApiKeyMiddleware,  # type: ignore[arg-type]
                keys=self.keys,
                open_paths=settings.auth_open_paths,
                metrics=self.metrics,
            )
        self.http_port = 0
        self.grpc_port = 0
        self.exit_code = EXIT_OK
        self.ready = asyncio.Event()
        self._stopping = asyncio.Event()
        self._forced = False
        self._drain_task: asyncio.Task[None] | None = None
        self._owns_process = False  # True once run() installed the signal handlers

    async def run(self) -> int:
        """Serve until a signal (main thread) or :meth:`request_stop`; the exit code."""
        self._install_signal_handlers()
        await self.start()
        return await self.wait()

    async def start(self) -> None:
        """Bind both ports (``self.http_port``/``grpc_port`` then hold them) and start."""
        sock = _listen(self.settings.http_host, self.settings.http_port)
        self.http_port = sock.getsockname()[1]
        self._health = health.aio.HealthServicer()
        interceptors = [ApiKeyInterceptor(self.keys, self.metrics)] if self.keys else []
        self._grpc, self.grpc_port = create_grpc_server(
            self.service,
            self.settings,
            self._health,
            interceptors=interceptors,
            credentials=self.tls.grpc_credentials() if self.tls else None,
        )
        install_over_limit_answer(self.metrics)
        config = uvicorn.Config(
            self.http_app,
            lifespan="on",
            log_config=None,
            log_level=self.settings.log_level,
            timeout_graceful_shutdown=int(FINAL_GRACE_S),
            server_header=False,  # no "server: uvicorn" on every answer
            http=GuardedHTTPProtocol,  # a silent connection is closed after the keep-alive
            limit_concurrency=_concurrency_limit(self.settings.max_connections),
            timeout_keep_alive=self.settings.http_keep_alive_s,
            ws_max_size=self.settings.max_body_bytes,  # a WebSocket frame: as a body
            **(self.tls.uvicorn_options() if self.tls else {}),
        )
        self._uvicorn = _Uvicorn(config)
        self._serving = asyncio.create_task(self._uvicorn.serve(sockets=[sock]))
        log.info(
            "listening: http %s:%d, grpc port %d",
            self.settings.http_host,
            self.http_port,
            self.grpc_port,
        )

    async def wait(self) -> int:
        """Until stopped: drain, shut everything down, and return the exit code."""
        stop = asyncio.create_task(self._stopping.wait())
        await asyncio.wait((stop, self._serving), return_when=asyncio.FIRST_COMPLETED)
        if self._serving.done():
            stop.cancel()
            log.error("the HTTP server stopped unexpectedly")
            self.exit_code = self.exit_code or EXIT_FAILED
        else:
            if not self._forced:
                self._drain_task = asyncio.create_task(self._drain())
                with contextlib.suppress(asyncio.CancelledError):
                    await self._drain_task
            if self._forced:
                await self._abort_requests()
            self._uvicorn.should_exit = True
        await self._serving
        if self._forced:  # uvicorn may have skipped the lifespan shutdown
            await self._stop_backends(FORCED_GRACE_S)
        return self.exit_code

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def request_stop(self, signum: int | None = None) -> None:
        """Begin the graceful shutdown; a second call stops now (see the module docstring),
        exiting ``128 + signum`` (``signum`` None: as for SIGTERM)."""
        if not self._stopping.is_set():
            log.info("shutdown requested: draining")
            self._stopping.set()
            return
        if self._forced:
            return
        self._forced = True
        self.exit_code = 128 + int(signum or signal.SIGTERM)
        log.warning("second stop request: stopping now (exit code %d)", self.exit_code)
        if self._owns_process:
            _exit_after(FORCED_EXIT_S, self.exit_code)
        if self._drain_task is not None and not self._drain_task.done():
            self._drain_task.cancel()  # wait() then aborts the requests
        elif hasattr(self, "_uvicorn"):
            self._uvicorn.force_exit = True  # the drain is over: stop waiting for connections

    async def _drain(self) -> None:
        await self._health.enter_graceful_shutdown()
        await self.service.drain(self.settings.drain_grace_s)

    async def _abort_requests(self) -> None:
        """Stop now: answer everything still queued or computing with 503 at once, and let
        those answers be written (bounded by FORCED_GRACE_S)."""
        self._uvicorn.config.timeout_graceful_shutdown = int(FORCED_GRACE_S)
        await self.service.stop()
        await self.service.drain(FORCED_GRACE_S)  # the handlers turn the failures into 503s

    async def _stop_backends(self, grace_s: float) -> None:
        await self._grpc.stop(grace_s)
        await self.service.stop()

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        await set_serving(self._health, False)
        await self._grpc.start()
        warm_up = asyncio.create_task(self._warm_up())
        try:
            yield
        finally:
            warm_up.cancel()
            await self._stop_backends(FORCED_GRACE_S if self._forced else FINAL_GRACE_S)
            log.info("stopped")

    async def _warm_up(self) -> None:
        try:
            await self.service.start()
        except Exception:
            log.exception("start-up failed")
            self._fail()
            return
        if not self.service.list_models():
            log.error("no model could be loaded; exiting")
            self._fail()
            return
        await set_serving(self._health, True)
        names = ", ".join(m.name for m in self.service.list_models())
        log.info("ready: models %s", names)
        self.ready.set()

    def _fail(self) -> None:
        self.exit_code = EXIT_FAILED
        self.request_stop()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig)
        self._owns_process = True


def _concurrency_limit(max_connections: int) -> int | None:
    """uvicorn's ``limit_concurrency`` for ``max_connections`` served connections: uvicorn
    answers 503 once the open connections (the asking one included) reach its limit."""
    return max_connections + 1 if max_connections else None


def _exit_after(seconds: float, code: int) -> None:
    """A backstop for "stop now": end the process after ``seconds`` even if a worker thread
    is stuck in a forward pass or a shutdown step hangs."""

    def exit_now() -> None:
        log.error("forced stop took longer than %.0f s: exiting %d", seconds, code)
        logging.shutdown()
        os._exit(code)

    timer = threading.Timer(seconds, exit_now)
    timer.daemon = True
    timer.start()


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket, bound before serving so port 0 resolves to a known port."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(address)
    sock.listen(2048)
    sock.setblocking(False)
    return sock


async def serve(settings: Settings) -> int:
    """Build the server from ``settings`` and run it; the process exit code."""
    return await MaskserveServer(settings).run()
