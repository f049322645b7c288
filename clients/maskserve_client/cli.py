"""``maskserve-client``: segment image files over REST, or stream video over gRPC."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from maskserve_client import __version__, cli_segment, cli_stream
from maskserve_client.bench import cli as cli_bench


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maskserve-client", description="Client for a maskserve segmentation server."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module, summary in (
        ("segment", cli_segment, "segment image files over REST: JSON + overlay PNG each"),
        ("stream", cli_stream, "stream a video file or camera over gRPC and report FPS/latency"),
        ("bench", cli_bench, "load a server (closed/open loop) and report throughput/latency"),
    ):
        sub = commands.add_parser(name, help=summary, description=summary)
        module.add_arguments(sub)
        sub.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """The console script: ``main``, then leave without interpreter teardown.

    gRPC's streaming call reads the request iterator (OpenCV decoding frames) on a thread
    of its own; when the server was unreachable, tearing the interpreter down with that
    thread's native state still alive aborted the process ("FATAL: exception not
    rethrown", exit code 134) after the right error had been printed.  Every file the
    commands write is closed by then, so the exit code is kept and teardown skipped.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    entry()
