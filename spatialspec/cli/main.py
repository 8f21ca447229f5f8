"""Entry point of the ``spatialspec`` command: builds the sub-command parsers and dispatches."""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence

from spatialspec import __version__

from . import audit, cost, data, label, measures, plan, study, sweep, sync

__all__ = ["build_parser", "main"]

COMMANDS = (data, study, cost, measures, audit, plan, sweep, sync, label)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(prog="spatialspec", description="Spatial specificity against spurious features "
                                     "(Saab et al., MLHC 2022) on MONAI.")
    parser.add_argument("--version", action="version", version=f"spatialspec {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="show MONAI's and ignite's training logs")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for invalid arguments or input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(message)s")
    if not args.verbose:
        # MONAI's StatsHandler and ignite's engines raise their loggers to INFO on creation; silence INFO globally
        logging.disable(logging.INFO)
        # notices that do not concern the user of the command: MONAI's optional GPU DICOM decoder is absent on CPU
        # machines, and the study runs bundles with logging configured here rather than by their logging.conf
        logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)
        logging.getLogger("monai.bundle.workflows").setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", message="NvImgCodecPydicomReader")
    try:
        return int(args.handler(args) or 0)
    except (ValueError, FileNotFoundError) as e:
        print(f"spatialspec {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
