"""Hypothesis-generated gRPC requests and frame streams against the real server.

Through ``maskserve_client``'s generated stubs, as a client would: model names, image
bytes (garbage, truncated and real images) and options (out-of-range values included).
Every answer is a result or a clean refusal (INVALID_ARGUMENT, NOT_FOUND, ...), never
INTERNAL or UNKNOWN, on unary calls and per stream frame alike; a stream that ends OK
answers every frame in order; the server still segments a good image afterwards. Bounded
and derandomized: the same requests on every run.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
from api_harness import HAS_SHIPPED, MODEL, RunningServer, encode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from maskserve_client.gen import segment_pb2 as pb
from maskserve_client.gen.segment_pb2_grpc import SegmentationStub

CALL_TIMEOUT_S = 120.0  # a safety net, never reached by a healthy server
BROKEN = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
BROKEN_CODES = {code.value[0] for code in BROKEN}
FUZZ = settings(
    max_examples=60,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
UINT32 = st.integers(0, 2**32 - 1)


@dataclass(frozen=True)
class Images:
    real: list[bytes]
    broken: list[bytes]


@pytest.fixture(scope="module")
def stub(server: RunningServer) -> Iterator[SegmentationStub]:
    with grpc.insecure_channel(server.grpc_target) as channel:
        yield SegmentationStub(channel)


@pytest.fixture(scope="module")
def images(pixels: np.ndarray, png: bytes, jpeg: bytes) -> Images:
    """Real images (PNG, JPEG, WebP, 1×1), and almost-images: truncated, corrupted, GIF."""
    tiny = encode(np.ascontiguousarray(pixels[:1, :1]), "PNG")
    corrupted = png[:100] + bytes(b ^ 0xFF for b in png[100:200]) + png[200:]
    return Images(
        real=[png, jpeg, encode(pixels, "WEBP"), tiny],
        broken=[png[: len(png) // 2], corrupted, b"GIF89a\x01\x00\x01\x00"],
    )


def image_bytes(images: Images) -> st.SearchStrategy[bytes]:
    """Half real images (so that some requests get through), half not."""
    real = st.sampled_from(images.real)
    return st.one_of(real, real, st.sampled_from(images.broken), st.binary(max_size=64))


def model_names() -> st.SearchStrategy[str]:
    """Half the time the served model."""
    odd = st.sampled_from(["", "nope", MODEL.upper(), MODEL + "\x00"])
    return st.one_of(st.just(MODEL), st.just(MODEL), odd, st.text(max_size=16))


@st.composite
def segment_options(draw: st.DrawFn) -> pb.SegmentOptions | None:
    if draw(st.booleans()):
        return None
    options = pb.SegmentOptions(
        classes=draw(st.lists(UINT32, max_size=4)), mask_format=draw(st.integers(0, 4))
    )
    if draw(st.booleans()):  # in [0, 1], or not: NaN, infinities, negatives, > 1
        options.score_threshold = draw(st.floats(width=32) | st.floats(0, 1, width=32))
    if draw(st.booleans()):
        options.max_detections = draw(UINT32 | st.integers(0, 120))
    return options


def assert_clean(error: grpc.RpcError) -> None:
    code = error.code()  # type: ignore[attr-defined]
    assert code not in BROKEN, f"{code}: {error.details()}"  # type: ignore[attr-defined]


def assert_serves_a_good_image(stub: SegmentationStub, png: bytes) -> None:
    reply = stub.Segment(pb.SegmentRequest(model=MODEL, image=png), timeout=CALL_TIMEOUT_S)
    assert (reply.model, reply.width, reply.height) == (MODEL, 320, 240)
    if HAS_SHIPPED:  # random weights detect nothing
        assert reply.detections


def test_unary_segment_answers_cleanly(stub: SegmentationStub, images: Images, png: bytes) -> None:
    @FUZZ
    @given(model=model_names(), image=image_bytes(images), options=segment_options())
    def check(model: str, image: bytes, options: pb.SegmentOptions | None) -> None:
        request = pb.SegmentRequest(model=model, image=image, options=options)
        try:
            reply = stub.Segment(request, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as error:
            assert_clean(error)
            return
        assert reply.model == model

    check()
    assert_serves_a_good_image(stub, png)


@st.composite
def frame_streams(draw: st.DrawFn, images: Images) -> list[pb.StreamFrame]:
    """1-5 frames; the first names a model (or not), later ones mostly keep it."""
    frames = []
    for index in range(draw(st.integers(1, 5))):
        model = draw(model_names() if index == 0 else st.sampled_from(["", "", MODEL, "nope"]))
        frames.append(
            pb.StreamFrame(
                frame_id=draw(st.integers(0, 2**64 - 1)),
                image=draw(image_bytes(images)),
                model=model,
                options=draw(segment_options()),
                skip_stale=draw(st.booleans()),
            )
        )
    return frames


def test_frame_streams_answer_cleanly(stub: SegmentationStub, images: Images, png: bytes) -> None:
    @FUZZ
    @given(frames=frame_streams(images))
    def check(frames: list[pb.StreamFrame]) -> None:
        results: list[pb.StreamResult] = []
        try:
            for result in stub.SegmentStream(iter(frames), timeout=CALL_TIMEOUT_S):
                results.append(result)
        except grpc.RpcError as error:
            assert_clean(error)
        else:  # every frame answered, in order, each with its own id
            assert [r.frame_id for r in results] == [f.frame_id for f in frames]
        for result in results:
            if result.WhichOneof("outcome") == "error":
                assert result.error.code not in BROKEN_CODES, result.error

    check()
    assert_serves_a_good_image(stub, png)
