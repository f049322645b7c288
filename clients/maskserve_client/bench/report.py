"""A benchmark's results: a table on stdout, JSON and CSV files, an optional plot."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from maskserve_client.bench.stats import LevelStats

PLOT_HINT = "--plot needs matplotlib: pip install 'maskserve-client[plot]' (or matplotlib itself)"
CSV_FIELDS = (
    "protocol",
    "mode",
    "concurrency",
    "rate",
    "requests",
    "ok",
    "seconds",
    "throughput",
    "p50_ms",
    "p90_ms",
    "p99_ms",
    "mean_ms",
    "max_ms",
    "queue_ms",
    "inference_ms",
    "postprocess_ms",
    "total_ms",
    "statuses",
)


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def statuses_text(statuses: Mapping[str, int], separator: str = " ") -> str:
    """``{"200": 98, "404": 2}`` → ``"200:98 404:2"``."""
    return separator.join(f"{status}:{count}" for status, count in statuses.items())


def table(levels: Sequence[LevelStats]) -> str:
    """An aligned Markdown table, one row per level, then each level's first error."""
    head = (
        "protocol",
        "level",
        "n",
        "ok",
        "img/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "server queue ms",
        "inference ms",
        "postprocess ms",
        "statuses",
    )
    rows = [head]
    for s in levels:
        lat, srv = s.latency_ms, s.server_ms
        rows.append(
            (
                s.protocol,
                s.level,
                str(s.requests),
                str(s.ok),
                f"{s.throughput:.1f}",
                _ms(lat["p50"]),
                _ms(lat["p90"]),
                _ms(lat["p99"]),
                _ms(srv["queue"]),
                _ms(srv["inference"]),
                _ms(srv["postprocess"]),
                statuses_text(s.statuses),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = [
        "| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
        for row in rows
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    lines += [
        f"first error ({s.protocol}, {s.level}): {s.first_error}" for s in levels if s.first_error
    ]
    return "\n".join(lines)


def _finite(value: Any) -> Any:
    """NaN (no successful answer to measure) → None, which JSON can carry."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def write_json(path: Path, levels: Sequence[LevelStats], settings: Mapping[str, Any]) -> None:
    document = {
        "tool": "maskserve-client bench",
        "settings": dict(settings),
        "levels": [_finite(s.to_json()) for s in levels],
    }
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def csv_row(s: LevelStats) -> dict[str, Any]:
    row: dict[str, Any] = {
        "protocol": s.protocol,
        "mode": s.mode,
        "concurrency": "" if s.concurrency is None else s.concurrency,
        "rate": "" if s.rate is None else s.rate,
        "requests": s.requests,
        "ok": s.ok,
        "seconds": f"{s.seconds:.4f}",
        "throughput": f"{s.throughput:.4f}",
        "statuses": statuses_text(s.statuses, ";"),
    }
    for name, value in s.latency_ms.items():
        row[f"{name}_ms"] = "" if math.isnan(value) else f"{value:.3f}"
    for name, value in s.server_ms.items():
        row[f"{name}_ms"] = "" if math.isnan(value) else f"{value:.3f}"
    return row


def write_csv(path: Path, levels: Sequence[LevelStats]) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(csv_row(s) for s in levels)


def require_matplotlib() -> ModuleType:
    """``matplotlib.pyplot`` on the file-only backend; RuntimeError with the hint if absent."""
    try:
        import matplotlib  # optional: the client's "plot" extra

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise RuntimeError(PLOT_HINT) from None
    return plt


def write_plot(path: Path, levels: Sequence[LevelStats]) -> None:
    """Latency (p50 solid, p99 dashed) against throughput, one line per protocol and mode."""
    plt = require_matplotlib()
    figure, axes = plt.subplots(figsize=(7, 4.5))
    series: dict[tuple[str, str], list[LevelStats]] = {}
    for s in levels:
        series.setdefault((s.protocol, s.mode), []).append(s)
    for (protocol, mode), group in series.items():
        xs = [s.throughput for s in group]
        (line,) = axes.plot(
            xs, [s.latency_ms["p50"] for s in group], "o-", label=f"{protocol} {mode} p50"
        )
        axes.plot(
            xs,
            [s.latency_ms["p99"] for s in group],
            "s--",
            color=line.get_color(),
            label=f"{protocol} {mode} p99",
        )
        for s in group:
            axes.annotate(
                s.level,
                (s.throughput, s.latency_ms["p50"]),
                fontsize=8,
                textcoords="offset points",
                xytext=(4, 4),
            )
    axes.set_xlabel("throughput (images/s)")
    axes.set_ylabel("latency (ms)")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
