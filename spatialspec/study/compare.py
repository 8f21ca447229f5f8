"""Compare two levels (or methods) of a study on the same test images: the difference in robust AUROC (Sec. 3.3.2,
5.1) with a paired stratified bootstrap interval and p-value, per seed and over seeds.

A study folder holds ``results.json`` and, per run and score, the per-image test predictions the records name
(``predictions``, see :mod:`spatialspec.study.predictions`). Two rows of the study are paired seed by seed: a run of
``a`` and a run of ``b`` with the same seed were evaluated on the same test images (on the synthetic data the test
split is generated from the seed; with a datalist it is the same for every seed), which is checked image by image.

* **per seed**: :func:`spatialspec.metrics.paired_bootstrap_difference` of ``figure(b) - figure(a)``;
* **pooled**: :func:`spatialspec.metrics.pooled_paired_bootstrap_difference`, the mean over the common seeds of the
  per-seed differences, each resample redrawing every seed's images (within (y, s) subgroups, the same images for a
  and b). The trained models are held fixed: the interval is about the test images, and the spread of the per-seed
  differences shows the training seeds' part.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from spatialspec.errors import InputError
from spatialspec.metrics.bootstrap import (
    PairedDifference,
    paired_bootstrap_difference,
    pooled_paired_bootstrap_difference,
)
from spatialspec.metrics.robust_auroc import FIGURE_NAMES

from .bundles import BASELINES, METHODS
from .predictions import RunPredictions, read_predictions
from .report import row_label

__all__ = ["Comparison", "load_results", "row_labels", "match_row", "compare_rows"]


@dataclass(frozen=True)
class Comparison:
    """The comparison of two rows of a study.

    Attributes:
        a: the row label of a (as :func:`spatialspec.study.report.row_label` names it).
        b: the row label of b.
        score: the image score compared.
        figure: the compared figure.
        per_seed: ``{seed: PairedDifference}`` for every seed both rows have, in increasing seed order.
        pooled: the mean over those seeds (:func:`spatialspec.metrics.pooled_paired_bootstrap_difference`).
        unpaired_seeds: seeds only one of the rows has (left out).
        n_resamples: bootstrap resamples.
        seed: seed of the resampling.
    """

    a: str
    b: str
    score: str
    figure: str
    per_seed: dict[int, PairedDifference]
    pooled: PairedDifference
    unpaired_seeds: list[int] = field(default_factory=list)
    n_resamples: int = 1000
    seed: int = 0

    def to_dict(self) -> dict[str, Any]:
        """The comparison as JSON-friendly data; ``difference`` is ``b - a``."""
        return {"a": self.a, "b": self.b, "score": self.score, "figure": self.figure, "difference": "b - a",
                "n_resamples": self.n_resamples, "seed": self.seed, "confidence": self.pooled.confidence,
                "per_seed": [{"seed": s, **d.to_dict()} for s, d in self.per_seed.items()],
                "pooled": {"seeds": list(self.per_seed), **self.pooled.to_dict()},
                "unpaired_seeds": self.unpaired_seeds}


def load_results(out_dir: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a study folder's ``results.json``.

    Raises:
        InputError: when the folder or file is missing or the file is not a list of study records.
    """
    from spatialspec.cost.planner import load_results as load_results_files

    path = Path(out_dir) / "results.json"
    if not Path(out_dir).is_dir():
        raise InputError(f"study folder not found: {out_dir}")
    if not path.is_file():
        raise InputError(f"{path} not found: RESULTS must be the --out folder of `spatialspec study`")
    records = load_results_files(path)
    if not all({"level", "score", "seed"} <= set(r) for r in records):
        raise InputError(f"{path} is not a list of study records (each with level, score and seed)")
    return records


def row_labels(records: list[dict[str, Any]]) -> list[str]:
    """The row labels of a study's records (``binary``, ``seg``, ``binary (jtt)``, ``seg n=20``, ...), first seen
    first."""
    return list(dict.fromkeys(row_label(r) for r in records))


def _normalise(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def _aliases(record: dict[str, Any]) -> set[str]:
    """The names a record's row answers to: its row label, and for a baseline or method the name ``--levels`` gives
    it (``jtt``, ``seg-ssl``), with `` n=K`` after it for a label budget."""
    names = {row_label(record)}
    model = record.get("model", "pixel")
    entry = model if model in BASELINES else next((k for k, (_, m) in METHODS.items() if m == model), None)
    if entry is not None:
        budget = record.get("location_labels")
        names.add(entry if budget is None else f"{entry} n={budget}")
    return {_normalise(n) for n in names}


def match_row(records: list[dict[str, Any]], name: str, option: str = "--a") -> str:
    """The row label ``name`` designates: a row label as the study table prints it (``binary``, ``bbox``, ``seg``,
    ``dilate:2``, ``binary (classifier)``, ``binary (jtt)``, ``seg (ssl)``, ``seg n=20``; case and spaces do not
    matter), or the ``--levels`` name of a baseline or method (``jtt``, ``george``, ``seg-ssl``, ``seg-spl``).

    Raises:
        InputError: naming ``option`` and listing the study's rows when none matches.
    """
    wanted = _normalise(name)
    for record in records:
        if wanted in _aliases(record):
            return row_label(record)
    raise InputError(f"{option} {name!r}: no such level in this study; it has: {', '.join(row_labels(records))}")


def _runs(records: list[dict[str, Any]], label: str, score: str) -> dict[int, dict[str, Any]]:
    """The record of each seed of row ``label`` for ``score`` (the last one if a seed was recorded twice)."""
    return {int(r["seed"]): r for r in records if row_label(r) == label and r["score"] == score}


def _predictions(out_dir: Path, record: dict[str, Any], label: str) -> RunPredictions:
    if not record.get("predictions"):
        raise InputError(f"{label!r}, seed {record['seed']}: the record names no test predictions file (a study "
                         "made before predictions were recorded); rerun the study to compare")
    return read_predictions(out_dir / record["predictions"])


def _pair(a: RunPredictions, b: RunPredictions, where: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Scores of a and b on the same images in the same order, with y and s; b is reordered by image id if needed."""
    if a.ids != b.ids:
        if len(set(a.ids)) != len(a.ids) or set(a.ids) != set(b.ids):
            only_a, only_b = sorted(set(a.ids) - set(b.ids)), sorted(set(b.ids) - set(a.ids))
            raise InputError(f"{where}: the two runs were not evaluated on the same test images ({len(a.ids)} and "
                             f"{len(b.ids)} images; only in a: {only_a[:3]}, only in b: {only_b[:3]})")
        position = {image: i for i, image in enumerate(b.ids)}
        order = np.array([position[image] for image in a.ids])
        b = RunPredictions(ids=a.ids, y=b.y[order], s=b.s[order], score=b.score[order])
    if not (np.array_equal(a.y, b.y) and np.array_equal(a.s, b.s)):
        bad = int(np.flatnonzero((a.y != b.y) | (a.s != b.s))[0])
        raise InputError(f"{where}: the two runs were not evaluated on the same test images (image {a.ids[bad]!r} has "
                         f"(y, s) = ({a.y[bad]}, {a.s[bad]}) in a and ({b.y[bad]}, {b.s[bad]}) in b)")
    return a.score, b.score, a.y, a.s


def compare_rows(out_dir: str | os.PathLike, a: str, b: str, score: str | None = None,
                 figure: str = "robust_auroc", n_resamples: int = 1000, seed: int = 0,
                 confidence: float = 0.95) -> Comparison:
    """Compare rows ``a`` and ``b`` of the study in ``out_dir``: ``figure(b) - figure(a)`` per seed and pooled over
    seeds, with paired stratified bootstrap intervals and two-sided p-values (see the module docstring and
    :mod:`spatialspec.metrics.bootstrap`).

    Args:
        out_dir: the study folder (``results.json`` and the predictions files).
        a: the first row (see :func:`match_row`).
        b: the second row; the difference is b - a.
        score: the image score (default: the study's first, its headline score).
        figure: one of :data:`spatialspec.metrics.FIGURE_NAMES` (default the robust AUROC).
        n_resamples: bootstrap resamples (>= 1).
        seed: seed of the resampling (each seed's comparison draws from ``default_rng([seed, run seed])``, the pooled
            one from ``default_rng(seed)``).
        confidence: the intervals' coverage, in (0, 1).

    Raises:
        InputError: for a missing study or predictions file, an unknown row, score or figure, rows with no seed in
            common, or runs evaluated on different test images.
    """
    if figure not in FIGURE_NAMES:
        raise InputError(f"--figure {figure!r}: must be one of {', '.join(FIGURE_NAMES)}")
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise InputError(f"--bootstrap must be an integer >= 1 to compare, got {n_resamples!r}")
    out = Path(out_dir)
    records = load_results(out)
    label_a, label_b = match_row(records, a, "--a"), match_row(records, b, "--b")
    scores = list(dict.fromkeys(r["score"] for r in records))
    score = scores[0] if score is None else score
    if score not in scores:
        raise InputError(f"--score {score!r}: the study evaluated {', '.join(scores)}")
    runs_a, runs_b = _runs(records, label_a, score), _runs(records, label_b, score)
    seeds = sorted(set(runs_a) & set(runs_b))
    if not seeds:
        raise InputError(f"{label_a!r} (seeds {sorted(runs_a)}) and {label_b!r} (seeds {sorted(runs_b)}) have no seed "
                         f"in common for score {score!r}: nothing to pair")
    samples = {}
    for s in seeds:
        pa = _predictions(out, runs_a[s], label_a)
        pb = _predictions(out, runs_b[s], label_b)
        samples[s] = _pair(pa, pb, f"{label_a!r} vs {label_b!r}, seed {s}")
    per_seed = {s: paired_bootstrap_difference(*samples[s], figure=figure, n_resamples=n_resamples,
                                               seed=np.random.default_rng([seed, s % 2**32]), confidence=confidence)
                for s in seeds}
    pooled = pooled_paired_bootstrap_difference([samples[s] for s in seeds], figure=figure, n_resamples=n_resamples,
                                                seed=seed, confidence=confidence)
    return Comparison(a=label_a, b=label_b, score=score, figure=figure, per_seed=per_seed, pooled=pooled,
                      unpaired_seeds=sorted(set(runs_a) ^ set(runs_b)), n_resamples=n_resamples, seed=seed)
