"""The errors spatialspec raises for a user's input: one clear line that names the file, field or parameter at fault
and the way out, shown without a traceback by the command line (``-v`` shows it) and exiting with status 2.

Library code raises :class:`InputError` (or a subclass) for anything the user can fix: a datalist, an option, a
checkpoint, a run folder made with other settings. Errors raised inside a MONAI bundle config expression reach the
caller wrapped by MONAI's config parser; :func:`root_cause` finds the user's error again.
"""

from __future__ import annotations

import os
import sys
import traceback
from types import TracebackType

__all__ = ["InputError", "RunIdentityError", "root_cause", "exit_on_input_error", "VERBOSE_ENV"]

#: set to 1 to see the traceback of an input error in ``python -m monai.bundle run``
VERBOSE_ENV = "SPATIALSPEC_VERBOSE"


class InputError(ValueError):
    """Bad input the user can fix: the message is one line naming the culprit (file, split, entry, field, option)."""


class RunIdentityError(InputError):
    """A result or checkpoint on disk was made with other settings than the run that would reuse or resume it
    (run identity: see :mod:`spatialspec.identity`)."""


def root_cause(error: BaseException) -> BaseException:
    """The innermost error of ``error``'s chain (``__cause__``, else ``__context__`` when not suppressed), preferring
    the outermost :class:`InputError` met on the way: MONAI's config parser wraps an expression's exception in a
    ``RuntimeError`` whose message repeats the whole expression, which is not what the user needs to read."""
    seen: set[int] = set()
    current: BaseException | None = error
    innermost = error
    while current is not None and id(current) not in seen:
        if isinstance(current, InputError):
            return current
        seen.add(id(current))
        innermost = current
        nxt = current.__cause__
        if nxt is None and not current.__suppress_context__:
            nxt = current.__context__
        current = nxt
    return innermost


def exit_on_input_error() -> None:
    """Make an uncaught :class:`InputError` (also when MONAI's config parser wrapped it) end the process with its
    message on one line, ``error: ...``, and exit status 2, without a traceback (``SPATIALSPEC_VERBOSE=1`` shows
    it); any other exception keeps Python's report. The bundles call this first in their ``initialize`` list, so
    ``python -m monai.bundle run`` reports a bad datalist or a run folder of another run the way the ``spatialspec``
    command does. Idempotent; in-process callers (the study) catch their errors themselves and never reach it.
    """
    previous = sys.excepthook
    if getattr(previous, "_spatialspec_input_errors", False):
        return

    def hook(kind: type[BaseException], error: BaseException, tb: TracebackType | None) -> None:
        cause = root_cause(error)
        if not isinstance(cause, InputError):
            previous(kind, error, tb)
            return
        if os.environ.get(VERBOSE_ENV, "").strip() not in ("", "0"):
            traceback.print_exception(kind, error, tb)
        print(f"error: {cause}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(2)  # the interpreter would exit 1 after an uncaught exception

    hook._spatialspec_input_errors = True  # type: ignore[attr-defined]
    sys.excepthook = hook
