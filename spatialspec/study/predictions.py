"""Per-image test predictions of a study run, and the uncertainty fields of its records (Sec. 3.3.2, 5.1).

Every run of a study writes, per image score, ``<out_dir>/runs/<run key>/test_predictions_<score>.csv`` with one row
per test image: ``id``, ``y``, ``s`` and ``score`` (full float precision), in the order the evaluator saw them (the
test split's order: the test loader does not shuffle). The record names the file relative to ``out_dir``
(``predictions``), so a study folder can be moved. ``spatialspec compare`` pairs two levels' files image by image, and
the study summary bootstraps the seed mean from them.

On the synthetic data the test images depend on the seed (the generator is seeded with the run's seed, and ids
repeat across seeds), so images pair only between runs of the same seed; with a datalist they are the same images
for every seed.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from spatialspec.atomic import atomic_write
from spatialspec.errors import InputError
from spatialspec.metrics.bootstrap import bootstrap_intervals, subgroup_counts
from spatialspec.metrics.robust_auroc import FIGURE_NAMES

__all__ = ["RunPredictions", "predictions_filename", "image_ids", "write_predictions", "read_predictions",
           "uncertainty_fields", "CI_FIELDS"]

# the record fields holding a figure's interval: ``robust_auroc_ci``, ``overall_auroc_ci``, ... ([low, high] or None)
CI_FIELDS = tuple(f"{name}_ci" for name in FIGURE_NAMES)
_COLUMNS = ("id", "y", "s", "score")


@dataclass(frozen=True)
class RunPredictions:
    """One run's image scores on the test split.

    Attributes:
        ids: image identifiers, shape (n,).
        y: image labels, shape (n,).
        s: spurious labels, shape (n,).
        score: image scores, shape (n,).
    """

    ids: tuple[str, ...]
    y: np.ndarray
    s: np.ndarray
    score: np.ndarray


def predictions_filename(score: str) -> str:
    """The file name of a score's predictions: ``test_predictions_mean.csv``, ``test_predictions_topk64.csv``."""
    return f"test_predictions_{score.replace(':', '')}.csv"


def image_ids(entries: Sequence[Any], y: np.ndarray, s: np.ndarray) -> list[str]:
    """Identifiers of the evaluated images: each test entry's ``id`` (its image path when it has none) when the
    entries' labels match the evaluated ``y`` and ``s`` in order, else the positions ``#0``, ``#1``, ...

    Args:
        entries: the test split as evaluated (``validate#data`` of ``evaluate.yaml``).
        y: the image labels the evaluator collected, shape (n,).
        s: the spurious labels it collected, shape (n,).
    """
    positional = [f"#{i}" for i in range(len(y))]
    if len(entries) != len(y) or not all(isinstance(e, dict) for e in entries):
        return positional
    if any(int(e.get("y", -1)) != int(a) or int(e.get("s", -1)) != int(b) for e, a, b in zip(entries, y, s)):
        return positional
    ids = [e.get("id", e.get("image")) for e in entries]
    if any(not isinstance(i, (str, int)) for i in ids) or len(set(map(str, ids))) != len(ids):
        return positional
    return [str(i) for i in ids]


def write_predictions(path: str | os.PathLike, ids: Sequence[str], y: Any, s: Any, score: Any) -> Path:
    """Write one run's test predictions as CSV (``id,y,s,score``; scores with ``repr`` precision), atomically."""
    y, s, score = (np.asarray(v).reshape(-1) for v in (y, s, score))
    if not len(ids) == len(y) == len(s) == len(score):
        raise ValueError(f"ids, y, s and score must have the same length, got {[len(ids), len(y), len(s), len(score)]}")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(_COLUMNS)
    writer.writerows((i, int(a), int(b), repr(float(c))) for i, a, b, c in zip(ids, y, s, score))
    return atomic_write(path, buffer.getvalue())


def read_predictions(path: str | os.PathLike) -> RunPredictions:
    """Read a file written by :func:`write_predictions`.

    Raises:
        InputError: naming the file when it is missing or not a predictions file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"test predictions file not found: {path} (written by `spatialspec study`; a study made "
                         "before predictions were recorded must be rerun)")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not set(_COLUMNS) <= set(reader.fieldnames):
            raise InputError(f"{path}: not a test predictions file (needs the columns {', '.join(_COLUMNS)})")
        rows = list(reader)
    try:
        y = np.array([int(r["y"]) for r in rows], dtype=np.int64)
        s = np.array([int(r["s"]) for r in rows], dtype=np.int64)
        score = np.array([float(r["score"]) for r in rows], dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise InputError(f"{path}: bad value ({e})") from None
    if not (np.isin(y, (0, 1)).all() and np.isin(s, (0, 1)).all()):
        raise InputError(f"{path}: y and s must be 0 or 1")
    return RunPredictions(ids=tuple(r["id"] for r in rows), y=y, s=s, score=score)


def uncertainty_fields(score: Any, y: Any, s: Any, n_resamples: int, seed: int) -> dict[str, Any]:
    """The uncertainty fields of a study record: ``subgroup_counts``, ``bootstrap`` (the number of resamples) and
    ``<figure>_ci`` = ``[low, high]`` for every figure of :data:`CI_FIELDS` (95% stratified percentile bootstrap over
    the test images, :func:`spatialspec.metrics.bootstrap_intervals`, seeded with ``seed``), or ``None`` each when
    ``n_resamples`` is 0.
    """
    fields: dict[str, Any] = {"subgroup_counts": subgroup_counts(y, s), "bootstrap": int(n_resamples)}
    if n_resamples <= 0:
        return {**fields, **{name: None for name in CI_FIELDS}}
    intervals = bootstrap_intervals(score, y, s, n_resamples=n_resamples, seed=seed)
    fields.update({f"{name}_ci": [float(low), float(high)] for name, (low, high) in intervals.items()})
    return fields
