"""The scaled compose stack, for real: 3 replicas behind nginx, Prometheus, a Docker engine.

Builds the image from the repository's Dockerfile through the compose file's build section
(torch's wheels from a local index: tests/deploy/wheelhouse.py), starts
``deploy/docker-compose.yml`` + ``deploy/docker-compose.scale.yml`` with ``--scale
maskserve=3`` (maskserve, nginx and Prometheus; images no registry here serves are local
stand-ins: tests/deploy/standins.py), then checks what a user relies on: both protocols are
balanced per request over every replica with right answers, Prometheus finds every
replica, the dashboard's queries evaluate, and a replica stopped under load costs no
request. Grafana itself is not started (no Debian package, no registry): its provisioning
is checked as files in tests/deploy/test_compose.py and its queries against the live
Prometheus here.

Skipped when no engine answers; ``MASKSERVE_DOCKER_TESTS=require`` (set by .ci/run once it
has started one) makes that a failure instead.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import standins
import wheelhouse
from compose_stack import ROOT, Stack, engine_answers, remove_leftovers
from maskserve_client import NO_RETRY, Client, RetryPolicy
from maskserve_client.grpc import GrpcClient
from maskserve_client.types import SegmentResult
from PIL import Image
from pycocotools import mask as mask_utils

pytestmark = [pytest.mark.docker, pytest.mark.timeout(3600)]

MODEL = "yolact_shapes"
REPLICAS = 3
EXAMPLE = ROOT / "models" / "zoo" / MODEL / "example.png"
WHEELHOUSE = Path(os.environ.get("MASKSERVE_WHEELHOUSE", "/var/tmp/maskserve-docker/wheelhouse"))
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "maskserve.json"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    if not engine_answers():
        reason = "no Docker engine with Compose v2 answers (tests/deploy/docker_engine.sh start)"
        if os.environ.get("MASKSERVE_DOCKER_TESTS") == "require":
            pytest.fail(reason)
        pytest.skip(reason)
    remove_leftovers("maskserve-test-")
    standins.ensure_all()
    wheelhouse.ensure(WHEELHOUSE)
    scaled = Stack.create(f"maskserve-test-{os.getpid()}", MASKSERVE_MODELS=MODEL)
    with wheelhouse.serve(WHEELHOUSE) as index:
        try:
            scaled.build(TORCH_INDEX_URL=index)
        except RuntimeError as exc:  # the build reaches PyPI: one more try for a network hiccup
            print(f"image build failed, trying once more:\n{exc}", file=sys.stderr)
            scaled.build(TORCH_INDEX_URL=index)
    try:
        scaled.up(REPLICAS)
        yield scaled
    except BaseException:
        print(scaled.logs(), file=sys.stderr)
        raise
    finally:
        scaled.down()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[bytes, SegmentResult]:
    """In-process answers (``maskserve predict``, same model files) for two images: the
    shipped example and its mirror image, so that answers cannot be swapped unnoticed."""
    out = tmp_path_factory.mktemp("reference")
    mirror = out / "mirror.png"
    with Image.open(EXAMPLE) as image:
        image.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(mirror)
    images = [EXAMPLE, mirror]
    command = [sys.executable, "-m", "maskserve.cli", "predict", *map(str, images)]
    subprocess.run(
        [*command, "--model", MODEL, "--out", str(out / "json")],
        check=True,
        capture_output=True,
        timeout=600,
    )
    return {
        path.read_bytes(): SegmentResult.from_json(
            json.loads((out / "json" / f"{path.stem}.json").read_text())
        )
        for path in images
    }


def assert_matches(got: SegmentResult, want: SegmentResult) -> None:
    """Same detections as the in-process answer, up to batch-size rounding."""

    def strong(result: SegmentResult) -> list:  # away from the threshold: no flip-flops
        return [d for d in result.detections if d.score >= 0.35]

    got_d, want_d = strong(got), strong(want)
    assert [d.class_id for d in got_d] == [d.class_id for d in want_d]
    for g, w in zip(got_d, want_d, strict=True):
        assert abs(g.score - w.score) < 2e-3
        assert max(abs(a - b) for a, b in zip(g.box, w.box, strict=True)) < 1.5
        iou = mask_utils.iou([g.rle.to_json()], [w.rle.to_json()], [False])[0][0]
        assert iou >= 0.97


def served_by(stack: Stack) -> dict[str, dict[str, float]]:
    return {name: stack.served(name) for name in stack.replicas()}


def delta(after: dict[str, float], before: dict[str, float], key: str) -> float:
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_rest_and_grpc_are_balanced_over_every_replica_with_right_answers(
    stack: Stack, reference: dict[bytes, SegmentResult]
) -> None:
    images = list(reference)
    before = served_by(stack)
    assert len(before) == REPLICAS
    with (
        Client(stack.http_url, model=MODEL, retry=NO_RETRY, timeout=120) as rest,
        GrpcClient(stack.grpc_target, model=MODEL, retry=NO_RETRY, timeout=120) as rpc,
        ThreadPoolExecutor(max_workers=6) as pool,
    ):
        jobs = [(client, images[i % 2]) for i in range(45) for client in (rest, rpc)]
        answers = list(pool.map(lambda job: (job[1], job[0].segment(job[1])), jobs))
    for image, answer in answers:
        assert_matches(answer, reference[image])
    after = served_by(stack)
    for name in before:
        for protocol in ("rest", "grpc"):
            assert delta(after[name], before[name], f"{protocol}/ok") >= 1, (name, after)
    total = sum(delta(after[n], before[n], f"{p}/ok") for n in before for p in ("rest", "grpc"))
    assert total == len(jobs)  # nothing retried behind the client's back


def test_prometheus_scrapes_every_replica(stack: Stack) -> None:
    series = stack.wait_for_series(
        'sum by (replica) (maskserve_requests_total{job="maskserve", status="ok"}) > 0',
        REPLICAS,
    )
    replicas = {s["metric"]["replica"] for s in series}
    assert len(replicas) == REPLICAS
    targets = stack.prometheus("/api/v1/targets", state="active")["activeTargets"]
    up = [t for t in targets if t["labels"]["job"] == "maskserve" and t["health"] == "up"]
    assert {t["labels"]["replica"] for t in up} == replicas


def test_every_dashboard_query_evaluates_on_the_live_prometheus(stack: Stack) -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    values = {"$__rate_interval": "1m", "$instance": ".*", "$model": ".*"}
    for expr in exprs:
        query = re.sub(r"\$\w+", lambda m: values[m.group(0)], expr)
        stack.prometheus("/api/v1/query", query=query)  # raises on a bad query
    per_replica = next(e for e in exprs if "by (replica)" in e and "requests_total" in e)
    query = re.sub(r"\$\w+", lambda m: values[m.group(0)], per_replica)
    # a rate needs two scrapes of a series: wait for the third replica's second one
    assert len(stack.wait_for_series(query, REPLICAS)) == REPLICAS


@dataclass(frozen=True)
class CountingRetry(RetryPolicy):
    """The client's retry policy, counting the retries it makes."""

    made: list[int] = field(default_factory=list)

    def delay(self, attempt: int, status: int, retry_after: str | None) -> float | None:
        wait = super().delay(attempt, status, retry_after)
        if wait is not None:
            self.made.append(status)
        return wait


@dataclass
class Load:
    """Closed-loop traffic through the balancer until stopped; every answer is checked."""

    reference: dict[bytes, SegmentResult]
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def loop(self, segment: Callable[[bytes], SegmentResult]) -> None:
        images = list(self.reference)
        i = 0
        while not self.stop.is_set():
            image = images[i % len(images)]
            i += 1
            try:
                assert_matches(segment(image), self.reference[image])
                outcome = None
            except Exception as exc:
                outcome = f"{type(exc).__name__}: {exc}"
            with self.changed:
                if outcome is None:
                    self.ok += 1
                else:
                    self.failures.append(outcome)
                self.changed.notify_all()

    def wait_for(self, count: int, timeout_s: float = 300) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.ok >= count or self.failures, timeout_s)


def test_a_replica_stopped_under_load_fails_no_request(
    stack: Stack, reference: dict[bytes, SegmentResult]
) -> None:
    victim = stack.replicas()[-1]
    load = Load(reference)
    # nginx cannot see a gRPC refusal (see deploy/nginx/nginx.conf): the client retries
    # UNAVAILABLE, with a budget (≈9 s of back-off) that outlasts a replica's drain, since a
    # retry may land on the same draining replica again (1 in 3)
    grpc_retries = CountingRetry(max_retries=8)
    with (
        Client(stack.http_url, model=MODEL, retry=NO_RETRY, timeout=120) as rest,
        GrpcClient(stack.grpc_target, model=MODEL, retry=grpc_retries, timeout=120) as rpc,
    ):
        senders = [rest.segment, rest.segment, rpc.segment, rpc.segment]
        threads = [threading.Thread(target=load.loop, args=(s,), daemon=True) for s in senders]
        for thread in threads:
            thread.start()
        try:
            load.wait_for(12)
            exit_code = stack.stop_replica(victim)
            stopped_at, ok_at_stop = time.monotonic(), load.ok
            # on past nginx's DNS cache (valid=5s): new requests no longer pick the victim
            load.wait_for(ok_at_stop + 20)
            while time.monotonic() - stopped_at < 8 and not load.failures:
                load.wait_for(load.ok + 1)
        finally:
            load.stop.set()
            for thread in threads:
                thread.join(timeout=180)
    print(f"gRPC calls the client retried (status → count): {Counter(grpc_retries.made)}")
    assert load.failures == []
    assert exit_code == 0, "the replica did not drain and exit cleanly"
    assert victim not in stack.replicas()
