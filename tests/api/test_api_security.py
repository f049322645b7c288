"""API keys over HTTP and gRPC, TLS and mutual TLS, and an exclusive gRPC port."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from api_harness import MODEL, RunningServer, metric_samples, running_server, server_settings
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from tls_certs import Certs, make_certs

from maskserve.api.gen import segment_pb2 as pb
from maskserve.api.gen import segment_pb2_grpc as pb_grpc
from maskserve.api.grpc_servicer import create_grpc_server

KEY = "s3cret-key-for-tests"
SEGMENT = f"/v1/models/{MODEL}/segment"


@pytest.fixture(scope="module")
def keyed(repository: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    keys = tmp_path_factory.mktemp("keys") / "keys.txt"
    keys.write_text(f"# one key per line\n{KEY}\n")
    settings = server_settings(repository, api_keys_file=keys, api_keys=["other-key"])
    with running_server(settings) as running:
        yield running


def failures(server: RunningServer, protocol: str) -> float:
    return metric_samples(server.http_url).get(
        ("maskserve_auth_failures_total", (("protocol", protocol),)), 0.0
    )


def segment(server: RunningServer, png: bytes, headers: dict[str, str]) -> httpx.Response:
    headers = {"content-type": "image/png", **headers}
    return httpx.post(server.http_url + SEGMENT, content=png, headers=headers, timeout=60)


def test_http_needs_a_key_and_counts_refusals(
    keyed: RunningServer, png: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    before = failures(keyed, "rest")
    with caplog.at_level(logging.DEBUG):
        for headers in ({}, {"authorization": "Bearer wrong"}, {"x-api-key": KEY + "x"}):
            refused = segment(keyed, png, headers)
            assert refused.status_code == 401
            assert refused.json()["error"]["code"] == "unauthenticated"
            assert refused.headers["www-authenticate"].startswith("Bearer")
        assert httpx.get(keyed.http_url + "/v1/models", timeout=30).status_code == 401
        assert segment(keyed, png, {"authorization": f"Bearer {KEY}"}).status_code == 200
        assert segment(keyed, png, {"x-api-key": KEY}).status_code == 200
        assert segment(keyed, png, {"x-api-key": "other-key"}).status_code == 200
    assert failures(keyed, "rest") == before + 4
    assert KEY not in caplog.text
    assert KEY not in httpx.get(keyed.http_url + "/metrics", timeout=30).text


def test_probes_and_metrics_stay_open(keyed: RunningServer) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(keyed.http_url + path, timeout=30).status_code == 200
    assert "server" not in httpx.get(keyed.http_url + "/healthz", timeout=30).headers


def test_grpc_needs_the_key_in_metadata_but_health_is_open(
    keyed: RunningServer, png: bytes
) -> None:
    before = failures(keyed, "grpc")
    request = pb.SegmentRequest(model=MODEL, image=png)
    with grpc.insecure_channel(keyed.grpc_target) as channel:
        stub = pb_grpc.SegmentationStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Segment(request, timeout=60)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert KEY not in (refused.value.details() or "")
        reply = stub.Segment(request, timeout=60, metadata=[("authorization", f"Bearer {KEY}")])
        assert reply.model == MODEL
        check = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(), timeout=30
        )
        assert check.status == health_pb2.HealthCheckResponse.SERVING
    assert failures(keyed, "grpc") == before + 1


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    return make_certs(tmp_path_factory.mktemp("tls"))


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
def test_tls_on_both_ports(repository: Path, certs: Certs, png: bytes, mutual: bool) -> None:
    settings = server_settings(
        repository,
        tls_cert_file=certs.server_cert,
        tls_key_file=certs.server_key,
        tls_client_ca_file=certs.ca if mutual else None,
    )
    with running_server(settings) as running:
        url = f"https://127.0.0.1:{running.server.http_port}{SEGMENT}"
        context = ssl.create_default_context(cafile=str(certs.ca))
        if mutual:
            with pytest.raises(httpx.HTTPError):  # no client certificate: refused
                httpx.post(url, content=png, headers={"content-type": "image/png"}, verify=context)
            context.load_cert_chain(str(certs.client_cert), str(certs.client_key))
        reply = httpx.post(
            url, content=png, headers={"content-type": "image/png"}, verify=context, timeout=60
        )
        assert reply.status_code == 200
        with pytest.raises(httpx.HTTPError):  # plain HTTP is not served
            httpx.get(f"http://127.0.0.1:{running.server.http_port}/healthz", timeout=10)
        client_pair = (
            {
                "private_key": certs.client_key.read_bytes(),
                "certificate_chain": certs.client_cert.read_bytes(),
            }
            if mutual
            else {}
        )
        credentials = grpc.ssl_channel_credentials(certs.ca.read_bytes(), **client_pair)
        with grpc.secure_channel(running.grpc_target, credentials) as channel:
            answer = pb_grpc.SegmentationStub(channel).Segment(
                pb.SegmentRequest(model=MODEL, image=png), timeout=60
            )
        assert answer.model == MODEL


def test_half_a_tls_configuration_is_refused(repository: Path, certs: Certs) -> None:
    from maskserve.app import MaskserveServer
    from maskserve.settings_fields import SettingsError

    with pytest.raises(SettingsError, match="both tls_cert_file and tls_key_file"):
        MaskserveServer(server_settings(repository, tls_cert_file=certs.server_cert))


def test_a_second_grpc_server_cannot_take_the_same_port(repository: Path) -> None:
    settings = server_settings(repository, grpc_port=0)

    async def body() -> None:
        first, port = create_grpc_server(None, settings, health.aio.HealthServicer())  # type: ignore[arg-type]
        try:
            taken = server_settings(repository, grpc_port=port)
            with pytest.raises(OSError, match="in use"):
                create_grpc_server(None, taken, health.aio.HealthServicer())  # type: ignore[arg-type]
        finally:
            await first.stop(None)

    import asyncio

    asyncio.run(body())


def test_a_second_server_cannot_take_the_same_http_port() -> None:
    from maskserve.app import _listen

    first = _listen("127.0.0.1", 0)
    try:
        port = first.getsockname()[1]
        with pytest.raises(OSError, match="in use"):
            _listen("127.0.0.1", port).close()
    finally:
        first.close()


def test_the_client_package_sends_the_key(keyed: RunningServer, png: bytes) -> None:
    from maskserve_client import Client, MaskserveClientError
    from maskserve_client.grpc import GrpcClient

    with Client(keyed.http_url, model=MODEL, api_key=KEY) as client:
        assert client.segment(png).model == MODEL
    with GrpcClient(keyed.grpc_target, model=MODEL, api_key=KEY) as client:
        assert client.segment(png).model == MODEL
        streamed = list(client.stream(iter([(0, png), (1, png)])))
        assert [r.frame_id for r in streamed] == [0, 1]
    with Client(keyed.http_url, model=MODEL) as client, pytest.raises(MaskserveClientError) as no:
        client.segment(png)
    assert no.value.status == 401
