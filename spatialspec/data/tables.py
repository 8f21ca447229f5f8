"""Plain CSV tables of the real data sets (SIIM-ACR's RLE and tube files, ISIC's trap sets; Sec. 5, App. A.1)."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path

from spatialspec.errors import InputError

__all__ = ["read_csv_rows"]


def read_csv_rows(path: Path, required: Sequence[str], what: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Rows of a CSV file as ``(line number, dict)`` with stripped header names and values (real files carry leading
    spaces and sometimes a byte-order mark); blank lines are skipped.

    Args:
        path: the file.
        required: columns that must be in the header.
        what: how error messages name the file, e.g. ``"RLE file"``.

    Raises:
        FileNotFoundError: if the file does not exist.
        InputError: (a ``ValueError``) naming the file (and line) for a file that is not UTF-8 text or not CSV, an
            empty file, a missing column or a row with the wrong number of fields.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            return _read_rows(csv.reader(f), path, required, what)
    except UnicodeDecodeError as e:
        raise InputError(f"{what} {path} is not a text (UTF-8) CSV file: {e.reason} at byte {e.start}") from None
    except csv.Error as e:
        raise InputError(f"{what} {path} is not a readable CSV file: {e}") from None


def _read_rows(reader: Iterator[list[str]], path: Path, required: Sequence[str], what: str
               ) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    header = next(reader, None)
    if header is None:
        raise InputError(f"{what} {path} is empty: expected the header {', '.join(required)}")
    names = [h.strip() for h in header]
    missing = [c for c in required if c not in names]
    if missing:
        raise InputError(f"{what} {path}: missing column(s) {missing} (header: {header})")
    rows = []
    for line, values in enumerate(reader, start=2):
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) != len(names):
            raise InputError(f"{what} {path}, line {line}: {len(values)} fields, the header has {len(names)}")
        rows.append((line, {k: v.strip() for k, v in zip(names, values)}))
    return names, rows
