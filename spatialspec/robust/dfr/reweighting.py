"""Deep Feature Reweighting's last-layer fit (Kirichenko et al., ICLR 2023, Sec. 5 "Deep Feature Reweighting" and
the DFR^Val_Tr protocol of Sec. 6; reference code ``dfr_evaluate_spurious.py``, ``dfr_on_validation_tune`` and
``dfr_on_validation_eval``), on the penultimate features of an ERM classifier.

What it does, step by step (``DeepFeatureReweighting.fit``):

1. groups are the four (y, s) subgroups of the validation split, ``g = 2 y + s`` (:data:`GROUP_NAMES`); it reads the
   spurious label s there, like the baselines' worst-group model selection (Saab et al. 2022, App. A.2);
2. **choosing C**: the validation split is cut in two halves, within each group (a seeded, group-stratified split;
   the reference code splits at random, which can leave a small group out of one half). Features are standardised
   with the first half's mean and standard deviation (sklearn ``StandardScaler``); for every C of the grid
   (:data:`C_GRID`, the reference code's ``C_OPTIONS``) the averaged fit of step 3 is made on the first half and
   scored on the second: worst-group accuracy (the paper's criterion) or the robust AUROC of Saab et al. (Sec.
   3.3.2), :data:`TUNING_METRICS`. The largest score wins; ties go to the first C of the grid (``np.argmax``, as in
   the reference code);
3. **the fit**: ``n_draws`` group-balanced subsets (every present group cut to the smallest group's size, drawn
   without replacement) each get an L1-penalised logistic regression (liblinear, the chosen C); their coefficients
   and intercepts are averaged (the reference code averages its retrains the same way). The tuning of step 2 scores
   this same averaged model (the reference code scores one draw per C);
4. **the refit**: step 3 on the whole validation split, standardised with the whole split's statistics.

:meth:`DeepFeatureReweighting.linear_layer` folds the standardisation into the weights, so the result is one
``nn.Linear`` on the raw penultimate features. Where DFR sits in Saab et al. (2022): a binary-label baseline next to
JTT and GEORGE (Table 1, App. A.2), which, like their worst-group model selection, reads s on the validation split
only; the training split is used for the ERM features alone.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from spatialspec.errors import InputError
from spatialspec.metrics import robust_auroc

__all__ = ["C_GRID", "GROUP_NAMES", "TUNING_METRICS", "group_ids", "balanced_subset", "l1_logistic_regression",
           "fit_balanced", "worst_group_accuracy", "DeepFeatureReweighting"]

#: the regularisation strengths tried (Kirichenko et al. 2023, reference code ``C_OPTIONS``)
C_GRID: tuple[float, ...] = (1.0, 0.7, 0.3, 0.1, 0.07, 0.03, 0.01)
#: the (y, s) groups, by id ``2 y + s``
GROUP_NAMES: tuple[str, ...] = ("y0s0", "y0s1", "y1s0", "y1s1")
#: the figures C can be chosen by on the held-out half of the validation split
TUNING_METRICS: tuple[str, ...] = ("worst_group_accuracy", "robust_auroc")


def _binary(values: Any, name: str) -> np.ndarray:
    array = np.asarray(values).reshape(-1)
    if array.size and not np.isin(array, (0, 1)).all():
        raise InputError(f"{name} must hold 0/1 values only, got {sorted(set(array.tolist()))[:6]}")
    return array.astype(np.int64)


def group_ids(y: Any, s: Any) -> np.ndarray:
    """The (y, s) group of every sample, ``2 y + s`` (:data:`GROUP_NAMES`).

    Args:
        y: array-like of shape (n_samples,), the class in {0, 1}.
        s: array-like of shape (n_samples,), the spurious label in {0, 1}.

    Raises:
        InputError: (a ``ValueError``) naming ``y`` or ``s`` when it is not 0/1, or when their lengths differ.
    """
    labels, spurious = _binary(y, "y"), _binary(s, "s")
    if labels.shape != spurious.shape:
        raise InputError(f"y and s must have one value per sample, got {labels.size} and {spurious.size}")
    return 2 * labels + spurious


def balanced_subset(groups: Any, rng: np.random.Generator) -> np.ndarray:
    """One group-balanced subset: for every present group in id order, ``m`` of its indices in a random order, where
    ``m`` is the smallest present group's size (drawn without replacement with ``rng.permutation``).

    Args:
        groups: array-like of shape (n_samples,), group ids (:func:`group_ids`).
        rng: the generator the draw consumes (one ``permutation`` per present group).

    Returns:
        the indices, of shape (m * n_present_groups,).

    Raises:
        InputError: (a ``ValueError``) when ``groups`` is empty.
    """
    ids = np.asarray(groups).reshape(-1)
    if ids.size == 0:
        raise InputError("groups: no sample to draw a balanced subset from")
    members = [np.flatnonzero(ids == g) for g in np.unique(ids)]
    size = min(len(m) for m in members)
    return np.concatenate([rng.permutation(m)[:size] for m in members])


def l1_logistic_regression(C: float, random_state: int = 0) -> LogisticRegression:
    """``LogisticRegression`` with an L1 penalty and the liblinear solver (Kirichenko et al. 2023), spelt for the
    installed scikit-learn: ``l1_ratio=1`` from 1.8 (where ``penalty`` is deprecated), ``penalty="l1"`` before."""
    if inspect.signature(LogisticRegression).parameters["penalty"].default == "deprecated":
        return LogisticRegression(C=C, l1_ratio=1.0, solver="liblinear", random_state=random_state)
    return LogisticRegression(C=C, penalty="l1", solver="liblinear", random_state=random_state)


def fit_balanced(features: Any, y: Any, groups: Any, C: float, n_draws: int = 10, seed: int = 0
                 ) -> tuple[np.ndarray, float]:
    """The averaged last layer of step 3 (module docstring): ``n_draws`` balanced subsets drawn with
    ``np.random.default_rng(seed)`` (:func:`balanced_subset`), one :func:`l1_logistic_regression` (``random_state
    seed``) fitted on each, coefficients and intercepts averaged.

    Args:
        features: array-like of shape (n_samples, n_features), already standardised.
        y: array-like of shape (n_samples,), the class in {0, 1}.
        groups: array-like of shape (n_samples,), group ids.
        C: inverse regularisation strength.
        n_draws: number of balanced subsets.
        seed: seed of the draws and of liblinear.

    Returns:
        ``(coef, intercept)``: the averaged coefficients, shape (n_features,), and intercept (the log-odds of y = 1).

    Raises:
        InputError: (a ``ValueError``) when a balanced subset holds one class only.
    """
    x, labels = np.asarray(features, dtype=np.float64), _binary(y, "y")
    rng = np.random.default_rng(seed)
    coefs, intercepts = [], []
    for _ in range(n_draws):
        idx = balanced_subset(groups, rng)
        if np.unique(labels[idx]).size < 2:
            raise InputError("a balanced subset holds one class only: the validation split needs images of both "
                             "classes")
        model = l1_logistic_regression(C, seed).fit(x[idx], labels[idx])
        coefs.append(model.coef_[0])
        intercepts.append(float(model.intercept_[0]))
    return np.mean(coefs, axis=0), float(np.mean(intercepts))


def worst_group_accuracy(decision: Any, y: Any, groups: Any) -> float:
    """The smallest accuracy over the present groups of the prediction ``decision > 0`` (the paper's criterion)."""
    predicted = (np.asarray(decision).reshape(-1) > 0).astype(np.int64)
    correct, ids = predicted == _binary(y, "y"), np.asarray(groups).reshape(-1)
    return float(min(correct[ids == g].mean() for g in np.unique(ids)))


def _check_settings(c_grid: Sequence[float], n_draws: int, metric: str) -> tuple[float, ...]:
    grid = tuple(float(c) for c in c_grid) if isinstance(c_grid, Sequence) and not isinstance(c_grid, str) else ()
    if not grid or not all(math.isfinite(c) and c > 0 for c in grid):
        raise InputError(f"dfr_c_grid must be a non-empty list of positive numbers, got {c_grid!r}")
    if isinstance(n_draws, bool) or not isinstance(n_draws, (int, np.integer)) or n_draws < 1:
        raise InputError(f"dfr_n_draws must be an integer >= 1, got {n_draws!r}")
    if metric not in TUNING_METRICS:
        raise InputError(f"dfr_metric must be one of {', '.join(TUNING_METRICS)}, got {metric!r}")
    return grid


class DeepFeatureReweighting:
    """DFR's last layer on penultimate features, tuned and refitted on the validation split (module docstring).

    Args:
        c_grid: the inverse regularisation strengths tried (default :data:`C_GRID`).
        n_draws: balanced subsets averaged per fit (default 10).
        metric: the tuning figure, one of :data:`TUNING_METRICS`.
        seed: seed of the half split, the draws and liblinear.

    Attributes (after :meth:`fit`):
        C_: the chosen C; ``scores_``: ``{C: tuning score}``; ``coef_`` (n_features,) and ``intercept_``: the refit on
        standardised features; ``mean_`` and ``scale_``: the standardisation (the whole validation split's);
        ``group_counts_``: images per group of the split; ``subset_size_``: images per group in each balanced subset.

    Raises:
        InputError: (a ``ValueError``) naming the setting (``dfr_c_grid``, ``dfr_n_draws``, ``dfr_metric``) that
            is invalid.

    Example:
        >>> dfr = DeepFeatureReweighting(seed=0).fit(features, y, s)
        >>> weight, bias = dfr.linear_layer()  # logits = features @ weight.T + bias
    """

    def __init__(self, c_grid: Sequence[float] = C_GRID, n_draws: int = 10, metric: str = "worst_group_accuracy",
                 seed: int = 0) -> None:
        self.c_grid, self.n_draws, self.metric, self.seed = c_grid, n_draws, metric, seed
        self._grid = _check_settings(c_grid, n_draws, metric)

    def _score(self, decision: np.ndarray, y: np.ndarray, s: np.ndarray) -> float:
        if self.metric == "worst_group_accuracy":
            return worst_group_accuracy(decision, y, group_ids(y, s))
        return float(robust_auroc(decision, y, s))

    def _halves(self, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The group-stratified half split of step 2: in every group, the first ``ceil(n / 2)`` of a seeded
        permutation fit, the rest score."""
        rng = np.random.default_rng([self.seed, 1])
        fit, score = [], []
        for g in np.unique(groups):
            members = rng.permutation(np.flatnonzero(groups == g))
            cut = (len(members) + 1) // 2
            fit.append(members[:cut])
            score.append(members[cut:])
        return np.sort(np.concatenate(fit)), np.sort(np.concatenate(score))

    def fit(self, features: Any, y: Any, s: Any) -> DeepFeatureReweighting:
        """Choose C on the two halves of the split, then refit on all of it (steps 1-4 of the module docstring).

        Args:
            features: array-like of shape (n_samples, n_features), the penultimate features of the validation split.
            y: array-like of shape (n_samples,), the class in {0, 1}.
            s: array-like of shape (n_samples,), the spurious label in {0, 1}.

        Raises:
            InputError: (a ``ValueError``) when the shapes disagree or the split lacks a class (each half needs both).
        """
        x = np.asarray(features, dtype=np.float64)
        labels, spurious = _binary(y, "y"), _binary(s, "s")
        groups = group_ids(labels, spurious)
        if x.ndim != 2 or x.shape[0] != labels.size:
            raise InputError(f"features must have shape (n_samples, n_features) with n_samples = {labels.size}, "
                             f"got {x.shape}")
        missing = [GROUP_NAMES[g] for g in range(len(GROUP_NAMES)) if not np.any(groups == g)]
        if missing:
            warnings.warn(f"DFR: the validation split has no image of group(s) {', '.join(missing)}: the balanced "
                          "subsets balance the other groups only", stacklevel=2)
        fit_idx, score_idx = self._halves(groups)
        for name, idx in (("first", fit_idx), ("second", score_idx)):
            if np.unique(labels[idx]).size < 2:
                raise InputError(f"the {name} half of the validation split holds one class only: DFR needs images of "
                                 "both classes in each half (more validation images)")
        scaler = StandardScaler().fit(x[fit_idx])
        x_fit, x_score = scaler.transform(x[fit_idx]), scaler.transform(x[score_idx])
        self.scores_: dict[float, float] = {}
        for c in self._grid:
            coef, intercept = fit_balanced(x_fit, labels[fit_idx], groups[fit_idx], c, self.n_draws, self.seed)
            score = self._score(x_score @ coef + intercept, labels[score_idx], spurious[score_idx])
            self.scores_[c] = score
        ranked = [v if math.isfinite(v) else -math.inf for v in self.scores_.values()]
        self.C_ = self._grid[int(np.argmax(ranked))]
        scaler = StandardScaler().fit(x)
        self.mean_, self.scale_ = scaler.mean_.copy(), scaler.scale_.copy()
        self.coef_, self.intercept_ = fit_balanced(scaler.transform(x), labels, groups, self.C_, self.n_draws,
                                                   self.seed)
        counts = np.bincount(groups, minlength=len(GROUP_NAMES))
        self.group_counts_ = {name: int(n) for name, n in zip(GROUP_NAMES, counts)}
        self.subset_size_ = int(counts[counts > 0].min())
        self.tuning_halves_ = {"fit": int(fit_idx.size), "score": int(score_idx.size)}
        return self

    def decision_function(self, features: Any) -> np.ndarray:
        """The log-odds of y = 1: standardise with :attr:`mean_` / :attr:`scale_`, then ``coef_`` and
        ``intercept_``; shape (n_samples,)."""
        x = (np.asarray(features, dtype=np.float64) - self.mean_) / self.scale_
        return x @ self.coef_ + self.intercept_

    def linear_layer(self, num_classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
        """The refit as one linear layer on raw features, the standardisation folded in: ``weight`` of shape
        (num_classes, n_features) and ``bias`` (num_classes,), class 0's row zero and class 1's the log-odds, so that
        ``softmax(features @ weight.T + bias)[:, 1] == sigmoid(decision_function(features))``.

        Raises:
            InputError: (a ``ValueError``) for ``num_classes`` other than 2 (DFR here is the binary y classifier).
        """
        if num_classes != 2:
            raise InputError(f"num_classes must be 2 for DFR's binary last layer, got {num_classes!r}")
        weight = np.zeros((2, self.coef_.size))
        bias = np.zeros(2)
        weight[1] = self.coef_ / self.scale_
        bias[1] = self.intercept_ - float(np.sum(self.coef_ * self.mean_ / self.scale_))
        return weight, bias

    def record(self) -> dict[str, Any]:
        """The fit as plain values for ``dfr.json``: chosen C, grid scores, metric, draws, seed, group counts and
        subset size."""
        return {"C": self.C_, "c_grid": list(self._grid), "scores": {str(c): v for c, v in self.scores_.items()},
                "metric": self.metric, "n_draws": int(self.n_draws), "seed": int(self.seed),
                "group_counts": self.group_counts_, "subset_size_per_group": self.subset_size_,
                "tuning_halves": self.tuning_halves_, "n_validation": int(sum(self.group_counts_.values())),
                "nonzero_coefficients": int(np.count_nonzero(self.coef_)), "n_features": int(self.coef_.size)}
