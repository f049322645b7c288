"""``maskserve-client bench`` without a server: schedule, loops, statistics, outputs, args.

The loops are driven by an in-memory ``send`` that answers on the next event-loop turn,
so their bookkeeping is checked exactly, with no clock in any assertion.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from maskserve_client.bench import report
from maskserve_client.bench.cli import Warmup, warmup_arg
from maskserve_client.bench.inputs import generate_images, parse_size, read_images
from maskserve_client.bench.load import Plan, Record, Window, closed_loop, open_loop, plan_arrivals
from maskserve_client.bench.schedule import arrival_times, poisson_arrivals
from maskserve_client.bench.stats import percentile, summarize
from maskserve_client.bench.targets import Outcome, failure
from maskserve_client.cli import build_parser, main
from maskserve_client.errors import MaskserveClientError
from PIL import Image

OK = Outcome("200", True, {"queue": 0.001, "inference": 0.02, "postprocess": 0.003, "total": 0.03})
REFUSED = Outcome("404", False, {}, "model_not_found: unknown model")


# --- the Poisson schedule --------------------------------------------------------------


def test_arrivals_are_the_cumulative_exponential_gaps_of_the_seeded_generator() -> None:
    times = arrival_times(8.0, seed=11, count=1000)
    expected = np.cumsum(np.random.default_rng(11).exponential(1 / 8.0, 1000))
    assert np.array_equal(times, expected)  # chunked draws give the very same sequence
    assert arrival_times(8.0, seed=11, count=1000) == times  # same seed, same schedule
    assert arrival_times(8.0, seed=12, count=1000) != times


def test_arrival_gaps_have_the_poisson_process_statistics() -> None:
    rate = 5.0
    gaps = np.diff([0.0, *arrival_times(rate, seed=3, count=200_000)])
    assert (gaps > 0).all()
    assert gaps.mean() == pytest.approx(1 / rate, rel=0.01)
    assert gaps.std() == pytest.approx(1 / rate, rel=0.01)  # exponential: std = mean
    # P(gap <= mean) = 1 - 1/e for an exponential distribution
    assert (gaps <= 1 / rate).mean() == pytest.approx(1 - math.exp(-1), abs=0.005)
    counts = np.bincount(np.floor(np.cumsum(gaps)).astype(int))[:-1]  # arrivals per second
    assert counts.var() / counts.mean() == pytest.approx(1.0, abs=0.05)  # Poisson: var = mean


def test_arrivals_until_a_time_and_bad_rates() -> None:
    times = arrival_times(10.0, seed=0, until=3.0)
    assert times and times[-1] < 3.0
    assert times == arrival_times(10.0, seed=0, count=len(times) + 1)[:-1]
    with pytest.raises(ValueError):
        next(poisson_arrivals(0.0, np.random.default_rng()))
    with pytest.raises(ValueError):
        arrival_times(1.0, seed=0)


def test_plan_arrivals_splits_warmup_and_measured() -> None:
    rng = np.random.default_rng(5)
    times, warmup = plan_arrivals(Plan(requests=7, warmup_requests=3), 4.0, rng)
    assert (len(times), warmup) == (10, 3)
    assert times == arrival_times(4.0, seed=5, count=10)
    times, warmup = plan_arrivals(
        Plan(duration_s=2.0, warmup_s=1.0), 20.0, np.random.default_rng(5)
    )
    assert all(t < 1.0 for t in times[:warmup]) and times[warmup] >= 1.0
    assert times[-1] - times[warmup] < 2.0
    every = arrival_times(20.0, seed=5, count=len(times) + 1)
    assert every[: len(times)] == times and every[-1] - times[warmup] >= 2.0


# --- the loops ---------------------------------------------------------------------------


class Counting:
    """An in-memory send: answers on the next loop turn; records how many were in flight."""

    def __init__(self, outcomes: list[Outcome] | None = None) -> None:
        self.outcomes = outcomes or [OK]
        self.sent: list[bytes] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def __call__(self, image: bytes) -> Outcome:
        outcome = self.outcomes[len(self.sent) % len(self.outcomes)]
        self.sent.append(image)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0)
        self.in_flight -= 1
        return outcome


def test_closed_loop_measures_exactly_the_requested_count() -> None:
    send = Counting()
    ticks: list[None] = []
    plan = Plan(requests=20, warmup_requests=6)
    window = asyncio.run(closed_loop(send, [b"a", b"b", b"c"], 4, plan, lambda: ticks.append(None)))
    assert len(window.records) == 20 and len(ticks) == 6 + 20
    assert send.most_in_flight == 4
    # the 3 other loops' requests in flight at the close are answered but not counted
    assert window.unmeasured == 6 + 3 and len(send.sent) == 6 + 20 + 3
    assert send.sent[:6] == [b"a", b"b", b"c", b"a", b"b", b"c"]  # images in turn
    assert window.opened_at is not None and window.closed_at is not None
    assert window.closed_at == window.records[-1].finished
    assert all(r.finished >= window.opened_at for r in window.records)


def test_closed_loop_without_warmup_opens_at_the_start() -> None:
    window = asyncio.run(closed_loop(Counting(), [b"x"], 1, Plan(requests=3)))
    assert len(window.records) == 3 and window.unmeasured == 0
    assert window.opened_at is not None and window.opened_at <= window.records[0].started


def test_open_loop_sends_every_arrival_and_measures_after_the_warmup() -> None:
    send = Counting([OK, REFUSED])
    ticks: list[None] = []
    arrivals = [0.0] * 9  # all due at once: no waiting, and all in flight together
    window = asyncio.run(open_loop(send, [b"p", b"q"], arrivals, 3, lambda: ticks.append(None)))
    assert len(send.sent) == len(ticks) == 9 and send.most_in_flight == 9
    assert len(window.records) == 6 and window.unmeasured == 3
    assert [r.outcome for r in window.records] == [REFUSED, OK] * 3  # in arrival order
    assert all(r.started == window.opened_at for r in window.records)
    assert window.closed_at == max(r.finished for r in window.records)


# --- statistics ----------------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 10, 101, 1000])
def test_percentiles_match_numpy(size: int) -> None:
    values = np.random.default_rng(size).lognormal(3.0, 0.7, size)
    for q in (0, 1, 25, 50, 90, 99, 99.9, 100):
        assert percentile(values.tolist(), q) == pytest.approx(np.percentile(values, q), rel=1e-12)


def test_percentile_edges() -> None:
    assert math.isnan(percentile([], 50))
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == 2.5
    with pytest.raises(ValueError):
        percentile([1.0], 101)


def test_summary_counts_statuses_and_means_server_timings() -> None:
    timed = Outcome("200", True, {"queue": 0.002, "inference": 0.04, "postprocess": 0.006})
    records = [Record(0.0, 0.1 * (i + 1), timed if i % 3 else REFUSED) for i in range(9)]
    stats = summarize(Window(records, opened_at=0.0, closed_at=2.0), "rest", concurrency=2)
    assert (stats.requests, stats.ok, stats.statuses) == (9, 6, {"200": 6, "404": 3})
    assert stats.throughput == pytest.approx(3.0)
    ok_ms = [100.0 * (i + 1) for i in range(9) if i % 3]
    assert stats.latency_ms["p50"] == pytest.approx(np.percentile(ok_ms, 50))
    assert stats.latency_ms["p99"] == pytest.approx(np.percentile(ok_ms, 99))
    assert stats.server_ms["inference"] == pytest.approx(40.0)
    assert math.isnan(stats.server_ms["total"])  # not reported by this server
    assert stats.first_error == REFUSED.error and stats.level == "conc 2"


def test_grpc_failures_are_labelled_with_the_grpc_code() -> None:
    assert failure("grpc", MaskserveClientError(404, "model_not_found", "x")).status == "NOT_FOUND"
    assert failure("grpc-stream", MaskserveClientError(503, "overloaded", "x")).status == (
        "UNAVAILABLE"
    )
    assert failure("rest", MaskserveClientError(0, "transport_error", "x")).status == (
        "transport_error"
    )


# --- outputs -------------------------------------------------------------------------------


def _levels() -> list:
    good = Window([Record(0.0, 0.05, OK)] * 4, opened_at=0.0, closed_at=0.5)
    bad = Window([Record(0.0, 0.01, REFUSED)] * 2, opened_at=0.0, closed_at=0.1)
    return [summarize(good, "grpc", concurrency=4), summarize(bad, "grpc", rate=2.5)]


def test_json_and_csv_outputs_parse(tmp_path: Path) -> None:
    levels = _levels()
    report.write_json(tmp_path / "r.json", levels, {"model": "m"})
    document = json.loads((tmp_path / "r.json").read_text())
    first, second = document["levels"]
    assert document["settings"] == {"model": "m"}
    assert (first["concurrency"], first["requests"], first["throughput"]) == (4, 4, 8.0)
    assert first["server_ms"]["inference"] == pytest.approx(20.0)
    assert second["rate"] == 2.5 and second["latency_ms"]["p50"] is None  # NaN → null
    report.write_csv(tmp_path / "r.csv", levels)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r.csv").read_text())))
    assert [r["mode"] for r in rows] == ["closed", "open"]
    assert float(rows[0]["p50_ms"]) == pytest.approx(50.0) and rows[1]["p50_ms"] == ""
    assert rows[1]["statuses"] == "404:2"
    text = report.table(levels)
    assert "conc 4" in text and "rate 2.5/s" in text and "404:2" in text
    assert "first error (grpc, rate 2.5/s): model_not_found" in text


def test_plot_is_written_when_matplotlib_is_installed(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    report.write_plot(tmp_path / "p.png", _levels())
    assert (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")


def test_plot_without_matplotlib_is_refused_up_front(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib → ImportError
    argv = ["bench", "--url", "http://127.0.0.1:9", "--concurrency", "1,2"]
    assert main([*argv, "--plot", str(tmp_path / "p.png")]) == 2
    assert "pip install 'maskserve-client[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "p.png").exists()


# --- images and arguments ----------------------------------------------------------------


def test_generated_images_are_seeded_jpegs_of_the_size(tmp_path: Path) -> None:
    images = generate_images(3, (96, 64), seed=1)
    assert images == generate_images(3, (96, 64), seed=1) != generate_images(3, (96, 64), seed=2)
    with Image.open(io.BytesIO(images[0])) as opened:
        assert (opened.format, opened.size) == ("JPEG", (96, 64))
    (tmp_path / "b.png").write_bytes(generate_images(1, (32, 32), 0, "PNG")[0])
    (tmp_path / "a.jpg").write_bytes(images[1])
    (tmp_path / "notes.txt").write_text("ignored")
    assert read_images([tmp_path]) == [images[1], (tmp_path / "b.png").read_bytes()]
    with pytest.raises(FileNotFoundError):
        read_images([tmp_path / "missing"])
    with pytest.raises(ValueError):
        read_images([tmp_path / "notes.txt"])
    assert parse_size("640x480") == (640, 480)


def test_bench_arguments() -> None:
    args = build_parser().parse_args(
        ["bench", "--target", "h:1", "--stream", "--concurrency", "1,4,8", "--rate", "5,10"]
    )
    assert (args.concurrency, args.rate, args.stream, args.target) == (
        [1, 4, 8],
        [5.0, 10.0],
        True,
        "h:1",
    )
    assert args.warmup == Warmup() and args.requests is None and args.seed == 0
    assert warmup_arg("12") == Warmup(requests=12) and warmup_arg("2.5s") == Warmup(seconds=2.5)


@pytest.mark.parametrize(
    "argv",
    [
        ["bench", "--url", "u", "--target", "t"],
        ["bench", "--requests", "5", "--duration", "2"],
        ["bench", "--concurrency", "0"],
        ["bench", "--rate", "-1"],
        ["bench", "--warmup", "x"],
        ["bench", "--size", "640"],
        ["bench", "--images", "a.jpg", "--generate", "2"],
    ],
)
def test_bad_bench_arguments_exit_with_usage(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        build_parser().parse_args(argv)
    assert caught.value.code == 2 and "usage:" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--stream"], "--stream needs --target"),
        (["--mask-format", "runs"], "gRPC only"),
        (["--plot", "p.png"], "at least two levels"),
        (["--images", "/no/such/folder"], "no such file"),
    ],
)
def test_inconsistent_bench_arguments_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bench", "--url", "http://127.0.0.1:9", *argv]) == 2
    assert message in capsys.readouterr().err
