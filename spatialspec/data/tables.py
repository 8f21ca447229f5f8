"""Plain CSV tables of the real data sets (SIIM-ACR's RLE and tube files, ISIC's trap sets; Sec. 5, App. A.1)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

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
        ValueError: naming the file (and line) for an empty file, a missing column or a row with the wrong number of
            fields.
    """
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{what} {path} is empty: expected the header {', '.join(required)}")
        names = [h.strip() for h in header]
        missing = [c for c in required if c not in names]
        if missing:
            raise ValueError(f"{what} {path}: missing column(s) {missing} (header: {header})")
        rows = []
        for line, values in enumerate(reader, start=2):
            if not values or all(not v.strip() for v in values):
                continue
            if len(values) != len(names):
                raise ValueError(f"{what} {path}, line {line}: {len(values)} fields, the header has {len(names)}")
            rows.append((line, {k: v.strip() for k, v in zip(names, values)}))
    return names, rows
