"""The ``maskserve`` command: subcommands map flags onto the runtime's entry points."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

from maskserve import evaluate, export, predict, serve
from maskserve.errors import MaskserveError


def _version() -> str:
    try:
        return version("maskserve")
    except PackageNotFoundError:
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maskserve", description="Instance-segmentation inference server"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    parser.add_argument(
        "--log-level", default="WARNING", help="logging level of the offline commands"
    )
    commands = parser.add_subparsers(dest="command", required=True)
    predict.add_arguments(commands.add_parser("predict", help="segment image files offline"))
    evaluate.add_arguments(
        commands.add_parser("evaluate", help="COCO AP on held-out synthetic images")
    )
    serve.add_arguments(commands.add_parser("serve", help="run the REST + gRPC server"))
    export.add_arguments(
        commands.add_parser("export", help="export a model to ONNX (checked against eager)")
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    handlers = {
        "predict": predict.run,
        "evaluate": evaluate.run,
        "serve": serve.run,
        "export": export.run,
    }
    try:
        return handlers[args.command](args)
    except (MaskserveError, KeyError, FileNotFoundError, ValueError) as exc:
        # a KeyError's str() is the repr of its message: print the message itself
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"maskserve: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
