"""Confidence intervals for the robustness figures: a stratified percentile bootstrap over the test images
(uncertainty of the robust AUROC of Sec. 3.3.2 / 5.1 and of every other figure of
:func:`spatialspec.metrics.subgroup_aurocs`), and a paired bootstrap test of the difference between two models
scored on the same test images.

**Resampling.** Each resample draws, within each of the four (y, s) subgroups, as many images as the subgroup holds,
with replacement (a stratified bootstrap; Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993, Sec. 8.3 on
stratified sampling designs). The subgroup sizes are fixed by the test design (and are what the figures condition
on: the robust AUROC compares (y=1, s=0) with (y=0, s=1)), so a figure defined on the test set is defined in every
resample, and a figure undefined on the test set (a subgroup it needs is empty) is undefined in every resample and
gets a NaN interval. A resample is stored as the multiplicity of every image (its counts, drawn multinomially within
each subgroup, which is the same distribution as drawing indices with replacement).

**AUROC by ranks.** Every figure of every resample is a Mann–Whitney statistic with multiplicities as weights:
AUROC = sum over positives p and negatives n of w_p w_n (1[score_p > score_n] + 0.5 1[score_p = score_n]) / (W_pos
W_neg). With the negatives sorted once by score, the weighted count of negatives below (and tied with) each positive
is a cumulative sum of the negatives' weights read at positions found once by ``searchsorted``, so one resample costs
O(n) and is never sorted: 1000 resamples of 1000 images for all seven figures take about 0.2 s. With unit weights
this is exactly the tie-corrected AUROC scikit-learn computes.

**Intervals.** Percentile intervals (Efron & Tibshirani 1993, Ch. 13): the (1 - c)/2 and (1 + c)/2 quantiles of the
resampled figures, c = ``confidence`` (0.95), over the resamples where the figure is defined (under stratification
that is all of them or none; none gives a NaN interval). They stay inside [0, 1] and need no normal approximation,
which matters here: robust AUROCs sit near 0 (a shortcut model) or 1 (a segmentation model), where the normal (Wald)
interval of DeLong et al. (1988) spills outside [0, 1], and the worst-pair AUROC (a minimum of four AUROCs) and a
mean over seeds have no DeLong variance at all. A figure of exactly 0 or 1 (perfect separation) is 0 or 1 in every
resample: its interval has zero width, which says the test set holds no counter-example, not that the population
has none.
The intervals describe test-set sampling only, for fixed trained models; training-seed variation is the standard
deviation over seeds, reported next to them.

**Paired differences.** :func:`paired_bootstrap_difference` draws the same resamples for two models' scores on the same
images, so the difference's interval accounts for their correlation. The two-sided p-value of "no difference" uses
the bootstrap distribution of the difference centred on the observed one (the null distribution is approximated by
d* - d, Hall & Wilson, *Two guidelines for bootstrap hypothesis testing*, Biometrics 1991; Efron & Tibshirani 1993,
Sec. 16.4): p = (1 + #{|d*_r - d| >= |d|}) / (1 + R) over the R resamples (Davison & Hinkley 1997, eq. 4.11), so the
smallest p a test can give is 1 / (R + 1), and identical scores give p = 1.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .robust_auroc import FIGURE_NAMES, PAIR_NAMES, PAIRS, _check

__all__ = ["SUBGROUPS", "subgroup_counts", "stratified_weights", "weighted_aurocs", "bootstrap_intervals",
           "seed_mean_interval", "PairedDifference", "paired_bootstrap_difference",
           "pooled_paired_bootstrap_difference"]

# the four (y, s) subgroups, in the order of the ``subgroup_counts`` keys
SUBGROUPS = ((0, 0), (0, 1), (1, 0), (1, 1))
# resamples per chunk are bounded so that a (chunk x n_images) weight matrix stays near this many entries
_CHUNK_ENTRIES = 4_000_000
# a replicate difference within this of the observed one counts as "as extreme" (float round-off of equal sums)
_TIE_TOLERANCE = 1e-12

# the (negative subgroups, positive subgroups) each figure compares; worst_pair_auroc is the minimum of the pairs
_FIGURE_CELLS: dict[str, tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]] = {
    "overall_auroc": (((0, 0), (0, 1)), ((1, 0), (1, 1))),
    "robust_auroc": (((0, 1),), ((1, 0),)),
    **{name: ((neg,), (pos,)) for name, (neg, pos) in zip(PAIR_NAMES, PAIRS)},
}


def _subgroup_name(y: int, s: int) -> str:
    return f"y{y}s{s}"


def subgroup_counts(y: Any, s: Any) -> dict[str, int]:
    """The number of images in each (y, s) subgroup (Sec. 3.3.2): ``{"y0s0": n, "y0s1": n, "y1s0": n, "y1s1": n}``.

    Args:
        y: array-like of shape (n_samples,), the image label y in {0, 1}.
        s: array-like of shape (n_samples,), the spurious label s in {0, 1}.
    """
    _, y, s = _check(np.zeros(len(np.asarray(y).reshape(-1))), y, s)
    return {_subgroup_name(a, b): int(np.sum((y == a) & (s == b))) for a, b in SUBGROUPS}


def _check_resampling(n_resamples: int, confidence: float) -> None:
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise ValueError(f"n_resamples must be an integer >= 1, got {n_resamples!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")


def _check_figure(figure: str) -> None:
    if figure not in FIGURE_NAMES:
        raise ValueError(f"figure must be one of {', '.join(FIGURE_NAMES)}, got {figure!r}")


def _generator(seed: int | np.random.Generator) -> np.random.Generator:
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _chunks(n_resamples: int, n_images: int) -> list[int]:
    size = max(1, _CHUNK_ENTRIES // max(n_images, 1))
    return [min(size, n_resamples - start) for start in range(0, n_resamples, size)]


def stratified_weights(y: Any, s: Any, n_resamples: int, seed: int | np.random.Generator = 0
                       ) -> np.ndarray:
    """Stratified bootstrap resamples as image multiplicities: within each (y, s) subgroup of m images, m draws with
    replacement, so every resample keeps every subgroup's size.

    Args:
        y: array-like of shape (n_samples,), the image label y.
        s: array-like of shape (n_samples,), the spurious label s.
        n_resamples: the number of resamples R (>= 1).
        seed: seed of a :func:`numpy.random.default_rng`, or a generator (which is advanced).

    Returns:
        an integer array of shape (R, n_samples): how many times each image is drawn in each resample.
    """
    _check_resampling(n_resamples, 0.95)
    _, y, s = _check(np.zeros(len(np.asarray(y).reshape(-1))), y, s)
    return _draw_weights(y, s, int(n_resamples), _generator(seed))


def _draw_weights(y: np.ndarray, s: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    weights = np.zeros((n_resamples, len(y)), dtype=np.int64)
    for a, b in SUBGROUPS:
        members = np.flatnonzero((y == a) & (s == b))
        if members.size:
            weights[:, members] = rng.multinomial(members.size, np.full(members.size, 1.0 / members.size),
                                                  size=n_resamples)
    return weights


def _weighted_auroc(score: np.ndarray, negatives: np.ndarray, positives: np.ndarray, weights: np.ndarray
                    ) -> np.ndarray:
    """Weighted Mann–Whitney AUROC of ``positives`` against ``negatives`` (index arrays) for each weight row; NaN
    where a class has zero total weight."""
    if negatives.size == 0 or positives.size == 0:
        return np.full(weights.shape[0], math.nan)
    order = np.argsort(score[negatives], kind="stable")
    sorted_neg = score[negatives][order]
    neg_w = weights[:, negatives[order]].astype(np.float64, copy=False)
    pos_w = weights[:, positives].astype(np.float64, copy=False)
    below = np.concatenate([np.zeros((weights.shape[0], 1)), np.cumsum(neg_w, axis=1)], axis=1)
    left = np.searchsorted(sorted_neg, score[positives], side="left")
    right = np.searchsorted(sorted_neg, score[positives], side="right")
    wins = below[:, left]
    tied = np.flatnonzero(right != left)  # a tie counts one half; elsewhere the half of nothing adds exactly 0
    if tied.size:
        wins[:, tied] += 0.5 * (below[:, right[tied]] - wins[:, tied])
    total = neg_w.sum(axis=1) * pos_w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (pos_w * wins).sum(axis=1) / np.where(total > 0, total, 1.0), math.nan)


def weighted_aurocs(y_pred: Any, y: Any, s: Any, weights: Any) -> dict[str, np.ndarray]:
    """Every figure of :func:`spatialspec.metrics.subgroup_aurocs` (Sec. 5.1) for each row of image weights.

    With a row of ones this is ``subgroup_aurocs`` itself; with a row of bootstrap multiplicities it is the figure of
    that resample (an image drawn k times counts k times; ties count one half, as in scikit-learn).

    Args:
        y_pred: array-like of shape (n_samples,), the image scores.
        y: array-like of shape (n_samples,), the image label y.
        s: array-like of shape (n_samples,), the spurious label s.
        weights: array-like of shape (R, n_samples) or (n_samples,), non-negative image weights.

    Returns:
        one array of shape (R,) per name of :data:`spatialspec.metrics.FIGURE_NAMES`; NaN where a figure's class has
        zero weight (``worst_pair_auroc``: the smallest defined pair AUROC, NaN if none is).
    """
    score, y, s = _check(y_pred, y, s)
    w = np.asarray(weights, dtype=np.float64)
    w = w.reshape(1, -1) if w.ndim == 1 else w
    if w.ndim != 2 or w.shape[1] != len(score):
        raise ValueError(f"weights must have shape (R, {len(score)}), got {np.asarray(weights).shape}")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("weights must be finite and >= 0")
    return _figures(score, y, s, w)


def _figures(score: np.ndarray, y: np.ndarray, s: np.ndarray, weights: np.ndarray,
             figures: Sequence[str] = FIGURE_NAMES) -> dict[str, np.ndarray]:
    cell = {(a, b): np.flatnonzero((y == a) & (s == b)) for a, b in SUBGROUPS}
    weights = weights.astype(np.float64, copy=False)  # once, not per figure (integer counts are exact)
    wanted = set(figures) | (set(PAIR_NAMES) if "worst_pair_auroc" in figures else set())
    result: dict[str, np.ndarray] = {}
    for name, (neg, pos) in _FIGURE_CELLS.items():
        if name in wanted:
            result[name] = _weighted_auroc(score, np.concatenate([cell[c] for c in neg]),
                                           np.concatenate([cell[c] for c in pos]), weights)
    if "worst_pair_auroc" in wanted:
        pairs = np.stack([result[name] for name in PAIR_NAMES])
        defined = np.isfinite(pairs)
        result["worst_pair_auroc"] = np.where(defined.any(axis=0), np.where(defined, pairs, np.inf).min(axis=0),
                                              math.nan)
    return {name: result[name] for name in FIGURE_NAMES if name in figures}


def _percentile_interval(replicates: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of the defined replicates; NaN when none is defined."""
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return (math.nan, math.nan)
    low, high = np.quantile(finite, [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0])
    return (float(low), float(high))


def _replicates(samples: Sequence[tuple[Sequence[np.ndarray], np.ndarray, np.ndarray]], n_resamples: int,
                rng: np.random.Generator, figures: Sequence[str]) -> list[list[dict[str, np.ndarray]]]:
    """Bootstrap replicates of ``figures`` for every score of every sample: ``samples[k] = (scores, y, s)`` where all
    ``scores`` of a sample are resampled together (paired). Returns ``[sample][score][figure] -> (R,)``."""
    out = []
    for scores, y, s in samples:
        parts: list[list[dict[str, np.ndarray]]] = [[] for _ in scores]
        for size in _chunks(n_resamples, len(y)):
            weights = _draw_weights(y, s, size, rng)
            for i, score in enumerate(scores):
                parts[i].append(_figures(score, y, s, weights, figures))
        out.append([{f: np.concatenate([p[f] for p in part]) for f in figures} for part in parts])
    return out


def bootstrap_intervals(y_pred: Any, y: Any, s: Any, n_resamples: int = 1000,
                        seed: int | np.random.Generator = 0, confidence: float = 0.95
                        ) -> dict[str, tuple[float, float]]:
    """Stratified percentile bootstrap interval of every figure of :func:`spatialspec.metrics.subgroup_aurocs`:
    robust AUROC (Sec. 5.1), overall, worst-pair and the four pair AUROCs (see the module docstring for the method).

    Args:
        y_pred: array-like of shape (n_samples,), the image scores.
        y: array-like of shape (n_samples,), the image label y.
        s: array-like of shape (n_samples,), the spurious label s.
        n_resamples: bootstrap resamples R (>= 1; 1000 is the usual choice for 95% percentile intervals).
        seed: seed of the resampling generator (the same seed gives the same intervals).
        confidence: the interval's coverage, in (0, 1).

    Returns:
        ``{figure: (low, high)}`` for every name of :data:`spatialspec.metrics.FIGURE_NAMES`; ``(nan, nan)`` for a
        figure undefined on the test set.

    Example:
        >>> ci = bootstrap_intervals([0.9, 0.2, 0.7, 0.4, 0.6, 0.1, 0.8, 0.3], [1, 0, 1, 0, 1, 0, 1, 0],
        ...                          [0, 1, 1, 0, 0, 1, 1, 0], n_resamples=200, seed=0)
        >>> ci["robust_auroc"]
        (1.0, 1.0)
    """
    _check_resampling(n_resamples, confidence)
    score, y, s = _check(y_pred, y, s)
    reps = _replicates([([score], y, s)], int(n_resamples), _generator(seed), FIGURE_NAMES)[0][0]
    return {name: _percentile_interval(reps[name], confidence) for name in FIGURE_NAMES}


def seed_mean_interval(samples: Sequence[tuple[Any, Any, Any]], figure: str = "robust_auroc",
                       n_resamples: int = 1000, seed: int | np.random.Generator = 0, confidence: float = 0.95
                       ) -> tuple[float, float]:
    """Percentile bootstrap interval of a figure's mean over several models, each scored on its own test images (the
    seeds of a study): every resample draws each model's test images anew (stratified by (y, s), independently per
    model) and averages the models' figures. This is the interval of the mean a study reports (Sec. 3.3.2: mean over
    seeds), for fixed trained models; pooling the seeds' predictions into one AUROC would instead rank one model's
    scores against another's, which share no scale.

    Args:
        samples: one ``(y_pred, y, s)`` per model (seed), arrays of shape (n_k,).
        figure: one of :data:`spatialspec.metrics.FIGURE_NAMES`.
        n_resamples: bootstrap resamples (>= 1).
        seed: seed of the resampling generator.
        confidence: the interval's coverage, in (0, 1).

    Returns:
        ``(low, high)``; NaN when the figure is undefined for any model (its mean is then undefined too).
    """
    _check_resampling(n_resamples, confidence)
    _check_figure(figure)
    if not samples:
        raise ValueError("seed_mean_interval needs at least one (y_pred, y, s) sample")
    checked = [_check(*sample) for sample in samples]
    reps = _replicates([([score], y, s) for score, y, s in checked], int(n_resamples), _generator(seed), (figure,))
    return _percentile_interval(np.mean([r[0][figure] for r in reps], axis=0), confidence)


@dataclass(frozen=True)
class PairedDifference:
    """A paired bootstrap comparison of two models on the same test images.

    Attributes:
        figure: the compared figure (``robust_auroc`` by default).
        estimate_a: the figure of model a (the mean over samples when pooled).
        estimate_b: the figure of model b (likewise).
        difference: ``estimate_b - estimate_a``: positive when b scores higher.
        ci_low: lower bound of the percentile interval of the difference.
        ci_high: upper bound.
        p_value: two-sided bootstrap p-value of "no difference" (see the module docstring); its resolution is
            1 / (n_resamples + 1).
        n_resamples: the resamples drawn.
        confidence: the interval's coverage.
        n_images: test images behind the comparison (summed over samples when pooled).
    """

    figure: str
    estimate_a: float
    estimate_b: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    n_resamples: int
    confidence: float
    n_images: int

    def to_dict(self) -> dict[str, Any]:
        """The comparison as a JSON-friendly dict."""
        return asdict(self)


def _paired_samples(samples: Sequence[tuple[Any, Any, Any, Any]]) -> list[tuple[list[np.ndarray], np.ndarray,
                                                                                 np.ndarray]]:
    checked = []
    for y_pred_a, y_pred_b, y, s in samples:
        a, labels, spurious = _check(y_pred_a, y, s)
        b, _, _ = _check(y_pred_b, y, s)
        checked.append(([a, b], labels, spurious))
    return checked


def pooled_paired_bootstrap_difference(samples: Sequence[tuple[Any, Any, Any, Any]], figure: str = "robust_auroc",
                                       n_resamples: int = 1000, seed: int | np.random.Generator = 0,
                                       confidence: float = 0.95) -> PairedDifference:
    """Paired bootstrap of the mean difference ``figure(b) - figure(a)`` over several samples (the seeds of a
    study, each with its own pair of models and test images).

    The difference is the mean over samples of the per-sample differences. Each resample draws every sample's test
    images anew (stratified by (y, s), independently per sample, the same images for a and b within a sample) and
    averages the resampled differences; the interval and the p-value follow the module docstring. The seeds' models
    are held fixed: the interval is about the test images, not about retraining.

    Args:
        samples: one ``(y_pred_a, y_pred_b, y, s)`` per sample, arrays of shape (n_k,) on the same images.
        figure: one of :data:`spatialspec.metrics.FIGURE_NAMES` (default the robust AUROC, Sec. 5.1).
        n_resamples: bootstrap resamples R (>= 1).
        seed: seed of the resampling generator.
        confidence: the interval's coverage, in (0, 1).

    Returns:
        a :class:`PairedDifference`; NaN difference, interval and p-value when the figure is undefined.
    """
    _check_resampling(n_resamples, confidence)
    _check_figure(figure)
    if not samples:
        raise ValueError("pooled_paired_bootstrap_difference needs at least one (y_pred_a, y_pred_b, y, s) sample")
    checked = _paired_samples(samples)
    point = [[_figures(score, y, s, np.ones((1, len(y))), (figure,))[figure][0] for score in scores]
             for scores, y, s in checked]
    est_a = float(np.mean([p[0] for p in point]))
    est_b = float(np.mean([p[1] for p in point]))
    diff = float(np.mean([p[1] - p[0] for p in point]))
    reps = _replicates(checked, int(n_resamples), _generator(seed), (figure,))
    replicates = np.mean([r[1][figure] - r[0][figure] for r in reps], axis=0)
    low, high = _percentile_interval(replicates, confidence)
    finite = replicates[np.isfinite(replicates)]
    if math.isnan(diff) or finite.size == 0:
        p_value = math.nan
    else:
        extreme = int(np.sum(np.abs(finite - diff) >= abs(diff) - _TIE_TOLERANCE))
        p_value = (1 + extreme) / (1 + finite.size)
    return PairedDifference(figure=figure, estimate_a=est_a, estimate_b=est_b, difference=diff, ci_low=low,
                            ci_high=high, p_value=float(p_value), n_resamples=int(n_resamples),
                            confidence=float(confidence), n_images=int(sum(len(y) for _, y, _ in checked)))


def paired_bootstrap_difference(y_pred_a: Any, y_pred_b: Any, y: Any, s: Any,
                                figure: str = "robust_auroc", n_resamples: int = 1000,
                                seed: int | np.random.Generator = 0, confidence: float = 0.95) -> PairedDifference:
    """Paired stratified bootstrap of ``figure(b) - figure(a)`` for two models scored on the same test images: the
    difference, its percentile interval and a two-sided p-value (see the module docstring; Efron & Tibshirani 1993).

    Args:
        y_pred_a: array-like of shape (n_samples,), model a's image scores.
        y_pred_b: array-like of shape (n_samples,), model b's scores on the same images, in the same order.
        y: array-like of shape (n_samples,), the image label y.
        s: array-like of shape (n_samples,), the spurious label s.
        figure: one of :data:`spatialspec.metrics.FIGURE_NAMES` (default the robust AUROC, Sec. 5.1).
        n_resamples: bootstrap resamples R (>= 1).
        seed: seed of the resampling generator.
        confidence: the interval's coverage, in (0, 1).

    Returns:
        a :class:`PairedDifference`.

    Example:
        >>> y, s = [1, 1, 0, 0, 1, 1, 0, 0], [0, 1, 0, 1, 0, 1, 0, 1]
        >>> same = paired_bootstrap_difference([.9, .8, .1, .2, .7, .6, .3, .4], [.9, .8, .1, .2, .7, .6, .3, .4],
        ...                                    y, s, n_resamples=100)
        >>> same.difference, same.p_value
        (0.0, 1.0)
    """
    return pooled_paired_bootstrap_difference([(y_pred_a, y_pred_b, y, s)], figure=figure,
                                              n_resamples=n_resamples, seed=seed, confidence=confidence)
