"""Entry point of the ``spatialspec`` command: builds the sub-command parsers and dispatches."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
import warnings
from collections.abc import Sequence

from spatialspec import __version__
from spatialspec.errors import InputError, root_cause

from . import audit, bundle, compare, cost, data, label, measures, plan, report, study, sweep, sync

__all__ = ["build_parser", "main", "input_error_line"]

COMMANDS = (data, study, compare, report, cost, measures, audit, plan, sweep, sync, label, bundle)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(prog="spatialspec", description="Spatial specificity against spurious features "
                                     "(Saab et al., MLHC 2022) on MONAI.")
    parser.add_argument("--version", action="version", version=f"spatialspec {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    _accept_verbose_anywhere(parser)
    return parser


VERBOSE_HELP = "show MONAI's and ignite's training logs, and the traceback of an error"


def _accept_verbose_anywhere(parser: argparse.ArgumentParser) -> None:
    """Let every sub-command take ``-v`` after its name too (``spatialspec study ... -v``), as users type it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):
                if "-v" not in child._option_string_actions:
                    child.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                                       help=VERBOSE_HELP)
                _accept_verbose_anywhere(child)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status: 2 for invalid arguments or input, reported on one line
    ``spatialspec <command>: error: <root cause>`` without a traceback (``-v`` prints it too)."""
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
    except Exception as e:
        line = input_error_line(e)
        if line is None:
            raise
        if args.verbose:
            traceback.print_exception(e)
        print(f"spatialspec {args.command}: error: {line}", file=sys.stderr)
        return 2


def input_error_line(error: BaseException) -> str | None:
    """The one line the command prints for ``error`` when it is bad input, ``None`` for anything else (a bug, shown
    with its traceback).

    Bad input is a ``ValueError`` (:class:`~spatialspec.errors.InputError` among them) or an ``OSError`` (a file
    not found, not readable) anywhere in the chain of ``error``: the outermost one, which names the culprit, or the
    :class:`~spatialspec.errors.InputError` that :func:`~spatialspec.errors.root_cause` finds under MONAI's config
    parser (whose ``RuntimeError`` repeats the whole bundle expression). Any other error raised inside a bundle config
    expression is reported by its root cause and type. Only the first line of the message is kept (``-v`` prints the
    traceback with all of it).
    """
    cause = root_cause(error)
    if not isinstance(cause, InputError):
        cause = next((e for e in _chain(error) if isinstance(e, (ValueError, OSError))), cause)
    if not isinstance(cause, (ValueError, OSError)) and not any(_is_config_wrapper(e) for e in _chain(error)):
        return None
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    text = lines[0] if lines else ""
    if not isinstance(cause, (ValueError, OSError)) or not text:
        text = f"{type(cause).__name__}: {text}" if text else type(cause).__name__
    return text + (" (-v shows the rest)" if len(lines) > 1 else "")


def _chain(error: BaseException) -> list[BaseException]:
    """``error`` and its causes (``__cause__``, else ``__context__`` unless suppressed), outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not e for e in chain):
        chain.append(current)
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)
    return chain


def _is_config_wrapper(error: BaseException) -> bool:
    """Whether ``error`` is MONAI's config parser wrapping an expression's error (``Failed to evaluate`` /
    ``Failed to instantiate``)."""
    return isinstance(error, RuntimeError) and str(error).startswith(("Failed to evaluate", "Failed to instantiate"))


if __name__ == "__main__":
    raise SystemExit(main())
