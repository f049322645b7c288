"""Fixtures of the client tests: stand-in servers on 127.0.0.1 (see client_stubs)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from client_stubs import StubGrpcServer, StubHttpServer


@pytest.fixture
def http_stub() -> Iterator[StubHttpServer]:
    server = StubHttpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def grpc_stub() -> Iterator[StubGrpcServer]:
    server = StubGrpcServer()
    server.start()
    yield server
    server.stop()
