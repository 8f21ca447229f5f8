"""Argument types of the command line: numbers checked at parse time, so a bad option value is reported by argparse
with the option's name."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["checked_number", "non_negative_int", "positive_int", "positive_number", "dollars", "fraction"]


def checked_number(cast: Callable[[str], float], accept: Callable[[float], bool], parse_message: str,
                   range_message: str | None = None) -> Callable[[str], float]:
    """An argparse ``type``: ``cast`` the text, then require ``accept(value)``; the messages say what is expected
    (``range_message`` defaults to ``parse_message``) and end with the given text."""

    def convert(text: str) -> float:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{parse_message}, got {text!r}") from None
        if not accept(value):
            raise argparse.ArgumentTypeError(f"{range_message or parse_message}, got {text!r}")
        return value

    return convert


non_negative_int = checked_number(int, lambda v: v >= 0, "must be an integer >= 0")
positive_int = checked_number(int, lambda v: v >= 1, "must be an integer >= 1")
positive_number = checked_number(float, lambda v: math.isfinite(v) and v > 0, "must be a number > 0",
                                 "must be a finite number > 0")
dollars = checked_number(float, lambda v: math.isfinite(v) and v >= 0, "must be a number of dollars >= 0",
                         "must be a finite number of dollars >= 0")
fraction = checked_number(float, lambda v: 0.0 < v <= 1.0, "must be a number in (0, 1]")
