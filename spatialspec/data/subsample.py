"""Seeded, class-stratified and nested training subsets for the label-budget sweep (Saab et al., Sec. 5.2, Fig. 4:
600, 1100, 2200 and 4400 location-labelled training samples).

The subset is the first ``n`` entries of one seeded order of the whole list, so:

* it is reproducible: it depends only on ``seed``, ``n``, the order of ``data`` and each entry's class
  ``data[i][key]``, not on any other field (an entry's ``label`` path may differ between levels), so every level of a
  study gets the same images for the same seed and ``n``;
* it is nested: for ``n1 < n2`` the subset of ``n1`` is contained in that of ``n2`` (same seed), so a label-budget
  curve adds labels to a fixed set rather than drawing a new one at each budget;
* it is stratified: the order starts with one entry of each class (so every class is present), then interleaves
  the classes by the Sainte-Laguë (Webster) divisor rule: the ``j``-th entry (``j >= 1``, 0-based) of a class of size
  ``N_c`` is placed at ``(j + 1/2) / N_c``, as in a systematic sample of each class at evenly spaced positions. A
  prefix of size ``n`` thus holds about ``n N_c / N`` entries of class ``c``: with two classes exactly the ``floor``
  or the ``ceil`` of that share (or 1 where the share is below 1), with more classes within a few entries of it.
  Ties go to the class seen first in ``data``.

Within a class, which entries come first is a seeded permutation (one generator per class, seeded by
``(seed, class rank)``).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

__all__ = ["stratified_order", "stratified_subset", "location_subset", "flag_location_labels"]


def _class_of(entry: Any, key: str, index: int) -> Hashable:
    if not isinstance(entry, dict):
        raise ValueError(f"data[{index}] must be a dict, got {type(entry).__name__}")
    if key not in entry:
        raise ValueError(f"data[{index}] has no class field {key!r} (it has {sorted(entry)})")
    value = entry[key]
    if isinstance(value, np.ndarray | np.generic):
        value = value.tolist()
    if isinstance(value, list):
        value = tuple(value)
    try:
        hash(value)
    except TypeError:
        raise ValueError(f"data[{index}][{key!r}] must be a hashable class value, got {value!r}") from None
    return value


def stratified_order(data: Sequence[dict[str, Any]], seed: int = 0, key: str = "y") -> np.ndarray:
    """The seeded order of all indices of ``data`` whose prefixes are the stratified subsets (see the module doc).

    Raises:
        ValueError: naming the entry when one is not a dict or lacks ``key``, or ``seed`` when not an integer >= 0.
    """
    return _order(data, seed, key)[0]


def _order(data: Sequence[dict[str, Any]], seed: int, key: str) -> tuple[np.ndarray, int]:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, got {seed!r}")
    classes: dict[Hashable, int] = {}
    ranks = np.empty(len(data), dtype=np.int64)
    for i, entry in enumerate(data):  # one dict look-up per entry, no per-pixel work
        ranks[i] = classes.setdefault(_class_of(entry, key, i), len(classes))
    positions = np.empty(len(data), dtype=np.float64)
    for rank in range(len(classes)):
        members = np.flatnonzero(ranks == rank)
        members = members[np.random.default_rng([int(seed), rank]).permutation(len(members))]
        place = (np.arange(len(members)) + 0.5) / len(members)
        place[0] = -1.0  # every class's first entry leads the order
        positions[members] = place
    # ties on the position go to the earlier class; within a class positions are distinct
    return np.lexsort((ranks, positions)), len(classes)


def stratified_subset(data: Sequence[dict[str, Any]], n: int, seed: int = 0, key: str = "y") -> list[dict[str, Any]]:
    """A seeded, class-stratified subset of ``n`` entries of ``data``, nested across ``n`` (Sec. 5.2 label budgets).

    The entries are returned in their order in ``data`` (the same objects, not copies). Same ``data`` classes and
    order, ``seed`` and ``n`` give the same entries; ``stratified_subset(data, n1, s)`` is contained in
    ``stratified_subset(data, n2, s)`` when ``n1 <= n2``.

    Args:
        data: a list of dicts (a datalist split), each with a class field ``key``.
        n: the subset size, between the number of classes and ``len(data)``.
        seed: the draw's seed.
        key: the field holding the class (the image label ``y`` by default).

    Raises:
        ValueError: naming ``n`` when it exceeds ``len(data)`` or is below the number of classes, ``seed`` when
            invalid, or the entry lacking ``key``.

    Example:
        >>> data = [{"id": i, "y": int(i < 10)} for i in range(40)]  # 10 positives, 30 negatives
        >>> sorted(e["y"] for e in stratified_subset(data, 8, seed=0))
        [0, 0, 0, 0, 0, 0, 1, 1]
    """
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise ValueError(f"n must be an integer, got {n!r}")
    order, n_classes = _order(data, seed, key)
    if n > len(data):
        raise ValueError(f"n={n} exceeds the {len(data)} entries of data")
    if n < n_classes:
        raise ValueError(f"n={n} is below the number of classes ({n_classes} values of {key!r}): a stratified "
                         "subset holds at least one entry of each")
    return [data[i] for i in np.sort(order[:n])]


def _check_budget(n: Any) -> int | None:
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise ValueError(f"location_labels must be an integer or None, got {n!r}")
    return int(n)


def location_subset(data: Sequence[dict[str, Any]], n: int | None, seed: int = 0, key: str = "y"
                    ) -> list[dict[str, Any]]:
    """The training entries that carry a location label under a budget of ``n`` (Sec. 5.2, Fig. 4): all of ``data``
    when ``n`` is ``None``, else :func:`stratified_subset` ``(data, n, seed, key)``.

    The location-supervised bundles train on this list (``location_labels`` in their ``train.yaml``); every level
    and method gets the same entries for the same ``seed`` and ``n``.

    Raises:
        ValueError: naming ``location_labels`` when ``n`` is neither ``None`` nor an integer, or as
            :func:`stratified_subset`.
    """
    n = _check_budget(n)
    return list(data) if n is None else stratified_subset(data, n, seed, key)


def flag_location_labels(data: Sequence[dict[str, Any]], n: int | None, seed: int = 0, key: str = "y",
                         flag_key: str = "labelled") -> list[dict[str, Any]]:
    """Every entry of ``data`` (shallow copies, in order) with ``flag_key`` set to 1 for the :func:`location_subset`
    of ``n`` and 0 for the rest: the labelled and unlabelled sets of semi-supervised training (Seg-SSL, Sec. 4.2.1).

    ``n`` ``None`` flags every entry as labelled.

    Raises:
        ValueError: as :func:`location_subset`, or naming ``flag_key`` when an entry already has that field.

    Example:
        >>> data = [{"id": i, "y": int(i < 10)} for i in range(40)]
        >>> [e["labelled"] for e in flag_location_labels(data, 8, seed=0)].count(1)
        8
    """
    n = _check_budget(n)
    flags = np.ones(len(data), dtype=np.int64)
    if n is not None:
        order, _ = _order(data, seed, key)
        stratified_subset(data, n, seed, key)  # the same checks of n
        flags[:] = 0
        flags[order[:n]] = 1
    flagged = []
    for i, entry in enumerate(data):
        if flag_key in entry:
            raise ValueError(f"data[{i}] already has a field {flag_key!r}: choose another flag_key")
        flagged.append({**entry, flag_key: int(flags[i])})
    return flagged
