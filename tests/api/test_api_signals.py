"""Signals to a real ``maskserve serve`` process (semantics: the module doc of server/app.py).

- First SIGTERM: every request admitted before it is answered 200, new ones get 503, exit 0.
- Second SIGTERM: stop now; what is still in flight gets 503, exit 128 + 15 = 143.
- SIGTERM during start-up (a model still loading): exit 0 at once, no traceback.
- SIGKILL: the same ports can be bound again at once and the new server serves.

Every wait gates on something observable (readiness, the in-flight gauge, the process
exiting); the timeouts are safety nets for a slow, shared machine. States that a real model
passes through too quickly to catch (a load or a forward pass in progress) are held by the
``gated`` family of tests/api/gated_serve.py, which blocks on a FIFO nobody opens.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
import pytest
from api_harness import MODEL, eventually, free_port, metric
from gated_serve import write_gated_model

from maskserve.api.gen import segment_pb2 as pb
from maskserve.api.gen import segment_pb2_grpc as pb_grpc

HERE = Path(__file__).parent
READY_TIMEOUT_S = 300.0
EXIT_TIMEOUT_S = 60.0
SIGTERM_TWICE = 128 + signal.SIGTERM
# Batches that wait (10 min) for company they never get: requests stay in flight until a
# signal's drain runs them, so "admitted" is observable without any timing.
HOLD_BATCHES = ["--adaptive-batching", "false", "--max-batch-size", "16",
                "--max-queue-delay-ms", "600000", "--request-timeout-s", "600"]  # fmt: skip


@dataclass
class Serve:
    process: subprocess.Popen[bytes]
    url: str
    grpc_target: str
    log: Path

    def text(self) -> str:
        return self.log.read_text()

    def is_ready(self) -> bool:
        return _status(self, "/readyz") == 200

    def in_flight(self, model: str) -> float:
        return metric(self.url, "maskserve_inflight_requests", model=model)


def _status(serve: Serve, path: str) -> int | None:
    if serve.process.poll() is not None:
        raise AssertionError(f"the server exited early with {serve.process.returncode}")
    try:
        return httpx.get(serve.url + path, timeout=5).status_code
    except httpx.TransportError:
        return None


@contextlib.contextmanager
def serving(
    repository: Path,
    models: str,
    tmp_path: Path,
    *extra: str,
    ports: tuple[int, int] | None = None,
    gated: bool = False,
    name: str = "serve",
) -> Iterator[Serve]:
    http_port, grpc_port = ports or (free_port(), free_port())
    launcher = [str(HERE / "gated_serve.py")] if gated else ["-m", "maskserve.cli"]
    command = [
        sys.executable, *launcher, "serve", "--model-repository", str(repository),
        "--models", models, "--devices", "cpu", "--host", "127.0.0.1",
        "--http-port", str(http_port), "--grpc-port", str(grpc_port), *extra,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("MASKSERVE_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    log = tmp_path / f"{name}.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    serve = Serve(process, f"http://127.0.0.1:{http_port}", f"127.0.0.1:{grpc_port}", log)
    try:
        yield serve
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        print(serve.text()[-4000:])  # shown when the test fails


def _segment(url: str, png: bytes, model: str = MODEL) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=120) as client:
        return client.post(
            f"/v1/models/{model}/segment", content=png, headers={"content-type": "image/png"}
        )


def _segment_grpc(target: str, png: bytes, model: str = MODEL) -> grpc.StatusCode:
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.SegmentationStub(channel)
        try:
            stub.Segment(pb.SegmentRequest(model=model, image=png), timeout=120)
        except grpc.RpcError as exc:
            return exc.code()
    return grpc.StatusCode.OK


def _exit_code(serve: Serve) -> int:
    return serve.process.wait(timeout=EXIT_TIMEOUT_S)


@pytest.mark.slow
def test_requests_admitted_before_sigterm_are_all_answered(
    repository: Path, png: bytes, tmp_path: Path
) -> None:
    rest, rpc = 4, 2
    with serving(repository, MODEL, tmp_path, *HOLD_BATCHES) as serve:
        eventually(serve.is_ready, "the server to become ready", timeout=READY_TIMEOUT_S)
        with ThreadPoolExecutor(rest + rpc) as pool:
            answers = [pool.submit(_segment, serve.url, png) for _ in range(rest)]
            calls = [pool.submit(_segment_grpc, serve.grpc_target, png) for _ in range(rpc)]
            eventually(lambda: serve.in_flight(MODEL) == rest + rpc, "all to be admitted")
            serve.process.send_signal(signal.SIGTERM)
            eventually(lambda: _status(serve, "/readyz") == 503, "readyz to turn 503")
            late = _segment(serve.url, png)
            assert late.status_code == 503 and late.json()["error"]["code"] == "model_not_ready"
            assert [a.result().status_code for a in answers] == [200] * rest
            assert [c.result() for c in calls] == [grpc.StatusCode.OK] * rpc
        assert _exit_code(serve) == 0
        assert "Traceback" not in serve.text()


@pytest.mark.slow
def test_second_sigterm_stops_now_and_answers_what_is_in_flight(tmp_path: Path, png: bytes) -> None:
    """The gated model's forward never ends: the drain (10 min grace) would wait for it."""
    repository = tmp_path / "repo"
    write_gated_model(repository, "gated", "infer")
    extra = ["--drain-grace-s", "600", "--max-batch-size", "1", "--adaptive-batching", "false"]
    with serving(repository, "gated", tmp_path, *extra, gated=True) as serve:
        eventually(serve.is_ready, "the server to become ready", timeout=READY_TIMEOUT_S)
        with ThreadPoolExecutor(2) as pool:
            answers = [pool.submit(_segment, serve.url, png, "gated") for _ in range(2)]
            eventually(lambda: serve.in_flight("gated") == 2, "both to be admitted")
            serve.process.send_signal(signal.SIGTERM)
            eventually(lambda: _status(serve, "/readyz") == 503, "the drain to begin")
            assert serve.in_flight("gated") == 2  # held by the forward, not answered
            serve.process.send_signal(signal.SIGTERM)
            for answer in answers:
                response = answer.result()
                assert response.status_code == 503, response.text
                assert response.json()["error"]["code"] == "model_not_ready"
        assert _exit_code(serve) == SIGTERM_TWICE
        assert "second stop request: stopping now (exit code 143)" in serve.text()
        assert "Traceback" not in serve.text()


@pytest.mark.slow
def test_sigterm_during_start_up_exits_zero_at_once(tmp_path: Path) -> None:
    """The gated model's load never ends: the listeners are up, the model never warm."""
    repository = tmp_path / "repo"
    write_gated_model(repository, "gated", "load")
    with serving(repository, "gated", tmp_path, gated=True) as serve:
        eventually(lambda: _status(serve, "/healthz") == 200, "the listeners", READY_TIMEOUT_S)
        assert _status(serve, "/readyz") == 503
        serve.process.send_signal(signal.SIGTERM)
        assert _exit_code(serve) == 0
        assert "Traceback" not in serve.text()
        assert "without waiting for threads still running" in serve.text()


@pytest.mark.slow
def test_sigkill_then_restart_on_the_same_ports(
    repository: Path, png: bytes, tmp_path: Path
) -> None:
    """A request in flight at the kill leaves connections behind on both ports."""
    ports = (free_port(), free_port())
    with serving(repository, MODEL, tmp_path, *HOLD_BATCHES, ports=ports) as first:
        eventually(first.is_ready, "the first server to become ready", timeout=READY_TIMEOUT_S)
        with ThreadPoolExecutor(2) as pool:
            cut = [pool.submit(_segment, first.url, png),
                   pool.submit(_segment_grpc, first.grpc_target, png)]  # fmt: skip
            eventually(lambda: first.in_flight(MODEL) == 2, "the requests to be admitted")
            first.process.send_signal(signal.SIGKILL)
            assert _exit_code(first) == -signal.SIGKILL
            with pytest.raises(httpx.TransportError):
                cut[0].result()
            assert cut[1].result() is grpc.StatusCode.UNAVAILABLE
    with serving(repository, MODEL, tmp_path, ports=ports, name="restart") as second:
        eventually(second.is_ready, "the restarted server", timeout=READY_TIMEOUT_S)
        assert _segment(second.url, png).status_code == 200
        assert _segment_grpc(second.grpc_target, png) is grpc.StatusCode.OK
        second.process.send_signal(signal.SIGTERM)
        assert _exit_code(second) == 0
