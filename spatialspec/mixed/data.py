"""Which training images of a mixed-supervision run keep which location label (issue 15, Sec. 3)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from spatialspec.data.subsample import _order, stratified_subset
from spatialspec.levels import parse_level

__all__ = ["BINARY", "flag_mixed_labels"]

#: the ``location_level`` of an image that keeps its image label only
BINARY = "binary"


def _check_mix(mix: Mapping[str, Any]) -> dict[str, int]:
    if not isinstance(mix, Mapping) or not mix:
        raise ValueError(f"location_mix must map location levels to counts, e.g. {{seg: 20, bbox: 60}}, got {mix!r}")
    out: dict[str, int] = {}
    for name, n in mix.items():
        try:
            level = parse_level(name)
        except ValueError as e:
            raise ValueError(f"location_mix: {e}") from None
        if level.kind == BINARY:
            raise ValueError(f"location_mix: {name!r} is no location label (the images beyond the mix are binary)")
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"location_mix: the count of {name!r} must be an integer >= 1, got {n!r}")
        if level.name in out:
            raise ValueError(f"location_mix: {name!r} is given twice")
        out[level.name] = int(n)
    return out


def flag_mixed_labels(data: Sequence[dict[str, Any]], n: int | None, seed: int = 0, level: str = "seg",
                      mix: Mapping[str, Any] | None = None, free_negatives: bool = True, key: str = "y",
                      level_key: str = "location_level", flag_key: str = "has_location") -> list[dict[str, Any]]:
    """Every entry of ``data`` (shallow copies, in order) with its ``level_key`` and ``flag_key``.

    The seeded, class-stratified, nested order of :func:`spatialspec.data.subsample.stratified_subset` gives the
    location labels: with ``mix`` (level -> count, in the order given) its first ``mix[l1]`` entries get level
    ``l1``, the next ``mix[l2]`` level ``l2``, ...; without it the first ``n`` get ``level`` (the entries Seg-ERM
    trains on at budget ``n``). The other entries keep their image label only (``level_key`` :data:`BINARY`,
    ``flag_key`` 0), except negative images (``key`` 0), whose location label is all background and costs nothing:
    they get ``level`` and ``flag_key`` 1 (unless ``free_negatives`` is false). ``n`` and ``mix`` both ``None`` labels
    every entry at ``level``.

    Args:
        data: the training entries (with ``key``).
        n: the label budget (``location_labels``); with ``mix`` it must be ``None`` or the mix's total.
        seed: the budget's seed.
        level: the run's level (the level of the budget's images and of the negative images).
        mix: level -> count, e.g. ``{"seg": 20, "bbox": 60}``.
        free_negatives: whether the negative images beyond the budget keep their all-background label.
        key, level_key, flag_key: the image label field, and the fields written.

    Raises:
        ValueError: naming ``location_mix`` when a level or count is invalid or the total is not ``n``,
            ``location_labels`` when ``n`` is invalid or exceeds ``data``, or ``flag_key`` / ``level_key`` when an
            entry already has that field.

    Example:
        >>> data = [{"id": i, "y": int(i < 10)} for i in range(40)]
        >>> flagged = flag_mixed_labels(data, None, seed=0, mix={"seg": 2, "bbox": 4})
        >>> [sum(e["location_level"] == lv for e in flagged) for lv in ("bbox", "binary")]
        [4, 8]
    """
    run_level = parse_level(level).name
    counts = _check_mix(mix) if mix is not None else None
    if counts is not None:
        total = sum(counts.values())
        if n is not None and n != total:
            raise ValueError(f"location_mix: its {total} labels differ from location_labels={n}")
        n = total
    if n is not None and (isinstance(n, bool) or not isinstance(n, int | np.integer)):
        raise ValueError(f"location_labels must be an integer or None, got {n!r}")
    levels = np.full(len(data), run_level, dtype=object)
    if n is not None:
        try:
            stratified_subset(data, int(n), seed, key)  # the checks of n
        except ValueError as e:
            raise ValueError(f"location_labels: {e}") from None
        order, _ = _order(data, seed, key)
        levels[:] = BINARY
        start = 0
        for name, count in (counts or {run_level: int(n)}).items():
            levels[order[start:start + count]] = name
            start += count
    flagged = []
    for i, entry in enumerate(data):
        for field in (flag_key, level_key):
            if field in entry:
                raise ValueError(f"data[{i}] already has a field {field!r}: choose another {field}")
        free = free_negatives and levels[i] == BINARY and int(entry[key]) == 0
        name = run_level if free else str(levels[i])
        flagged.append({**entry, level_key: name, flag_key: int(name != BINARY)})
    return flagged
