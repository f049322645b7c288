"""``maskserve-client segment``: many image files over REST, ``<stem>.json`` + overlay each."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from maskserve_client._cliargs import add_options, positive_int
from maskserve_client.errors import MaskserveClientError
from maskserve_client.images import OCTET_STREAM, load_rgb, media_type
from maskserve_client.overlay import save_overlay
from maskserve_client.rest import DEFAULT_URL, Client
from maskserve_client.retry import RetryPolicy

OVERLAY_SUFFIX = ".overlay.png"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE", help="JPEG/PNG/WebP files")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="output folder")
    parser.add_argument("--url", default=DEFAULT_URL, help="server address (default %(default)s)")
    add_options(parser)
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=4,
        metavar="N",
        help="requests in flight (default 4)",
    )
    parser.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="server-side deadline per image, seconds"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=3,
        metavar="N",
        help="retries of an overloaded server (default 3)",
    )
    parser.add_argument("--no-overlay", action="store_true", help="write only the JSON files")


@dataclass(frozen=True)
class Job:
    source: Path
    #: Output name without suffix; unique within the run.
    stem: str


def plan_jobs(files: Sequence[Path]) -> list[Job]:
    """One job per file; stems that repeat (``a/x.jpg``, ``b/x.jpg``) get ``-1``, ``-2``..."""
    seen: dict[str, int] = {}
    jobs = []
    for path in files:
        count = seen.get(path.stem, 0)
        seen[path.stem] = count + 1
        jobs.append(Job(path, path.stem if count == 0 else f"{path.stem}-{count}"))
    return jobs


def process(client: Client, job: Job, args: argparse.Namespace) -> int:
    """Segment one file and write its outputs; returns its number of detections."""
    data = job.source.read_bytes()
    result = client.segment(
        data,
        model=args.model,
        score_threshold=args.score_threshold,
        max_detections=args.max_detections,
        classes=args.classes,
        timeout=args.timeout,
    )
    text = json.dumps(result.to_json(), indent=2)
    (args.out / f"{job.stem}.json").write_text(text + "\n", encoding="utf-8")
    if not args.no_overlay:
        save_overlay(load_rgb(data), result, args.out / f"{job.stem}{OVERLAY_SUFFIX}")
    return len(result.detections)


def run(args: argparse.Namespace) -> int:
    jobs = plan_jobs(args.files)
    missing = [str(job.source) for job in jobs if not job.source.is_file()]
    if missing:
        print(f"error: not a file: {', '.join(missing)}", file=sys.stderr)
        return 2
    unknown = [job.source.name for job in jobs if media_type(b"", job.source.name) == OCTET_STREAM]
    if unknown:
        print(
            f"warning: not .jpg/.png/.webp, sending anyway: {', '.join(unknown)}", file=sys.stderr
        )
    args.out.mkdir(parents=True, exist_ok=True)
    retry = RetryPolicy(max_retries=max(args.retries, 0))
    failures = detections = 0
    with (
        Client(args.url, model=args.model, retry=retry, max_connections=args.concurrency) as client,
        ThreadPoolExecutor(max_workers=args.concurrency) as pool,
        tqdm(total=len(jobs), unit="img", desc="segment", file=sys.stderr) as progress,
    ):
        futures: dict[Future[int], Job] = {
            pool.submit(process, client, job, args): job for job in jobs
        }
        for future in as_completed(futures):
            try:
                detections += future.result()
            except (MaskserveClientError, OSError, ValueError) as exc:
                failures += 1
                progress.write(f"{futures[future].source}: {exc}", file=sys.stderr)
            progress.update()
    done = len(jobs) - failures
    print(f"{done}/{len(jobs)} images segmented, {detections} detections, outputs in {args.out}")
    return 1 if failures else 0
