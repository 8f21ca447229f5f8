"""Bootstrap intervals and paired differences of the robustness figures (spatialspec.metrics.bootstrap, Sec. 5.1),
checked against a brute-force bootstrap that expands every resample and scores it with scikit-learn."""

from __future__ import annotations

import inspect
import math
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from spatialspec.metrics import (
    FIGURE_NAMES,
    PAIR_NAMES,
    RobustAUROCMetric,
    bootstrap_intervals,
    paired_bootstrap_difference,
    pooled_paired_bootstrap_difference,
    seed_mean_interval,
    stratified_weights,
    subgroup_aurocs,
    subgroup_counts,
    weighted_aurocs,
)

# the hand-made example of test_robust_auroc.py: ties inside and across subgroups
SCORE = [0.9, 0.3, 0.9, 0.8, 0.2, 0.1, 0.5, 0.5]
Y = [1, 1, 1, 0, 0, 0, 1, 0]
S = [1, 0, 0, 1, 1, 0, 0, 1]


def _data(n: int, seed: int, shift: float = 1.0, shortcut: float = 0.5, rounding: int = 1):
    """n images with s independent of y; scores read y (``shift``) and s (``shortcut``), rounded to make ties."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = rng.integers(0, 2, n)
    score = np.round(rng.normal(size=n) + shift * y + shortcut * s, rounding)
    return score, y, s


def _brute_force(score, y, s, weights) -> dict[str, np.ndarray]:
    """Every figure of every resample: the resample expanded (each image repeated by its weight) and scored with
    subgroup_aurocs (scikit-learn)."""
    out: dict[str, list[float]] = {name: [] for name in FIGURE_NAMES}
    for row in weights:
        index = np.repeat(np.arange(len(y)), row)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            figures = subgroup_aurocs(score[index], y[index], s[index])
        for name in FIGURE_NAMES:
            out[name].append(figures[name])
    return {name: np.array(values) for name, values in out.items()}


def test_unit_weights_give_subgroup_aurocs_with_ties():
    expected = subgroup_aurocs(SCORE, Y, S)
    got = weighted_aurocs(SCORE, Y, S, np.ones(len(Y)))
    assert set(got) == set(FIGURE_NAMES)
    for name in FIGURE_NAMES:
        assert got[name].shape == (1,)
        assert got[name][0] == pytest.approx(expected[name], abs=1e-12), name
    assert got["robust_auroc"][0] == pytest.approx(11 / 18)


def test_weighted_aurocs_match_sklearn_sample_weight_and_repetition():
    score, y, s = _data(300, seed=3)
    weights = np.random.default_rng(4).integers(0, 4, size=(5, len(y)))
    got = weighted_aurocs(score, y, s, weights)
    brute = _brute_force(score, y, s, weights)
    robust = y != s
    for r, row in enumerate(weights):
        assert got["overall_auroc"][r] == pytest.approx(roc_auc_score(y, score, sample_weight=row), abs=1e-12)
        assert got["robust_auroc"][r] == pytest.approx(
            roc_auc_score(y[robust], score[robust], sample_weight=row[robust]), abs=1e-12)
        for name in FIGURE_NAMES:
            assert got[name][r] == pytest.approx(brute[name][r], abs=1e-12), (name, r)


def test_zero_weight_class_is_nan():
    weights = np.ones((2, len(Y)))
    weights[1, [1, 2, 6]] = 0  # drop every (y=1, s=0) image from the second row
    got = weighted_aurocs(SCORE, Y, S, weights)
    assert not math.isnan(got["robust_auroc"][0]) and math.isnan(got["robust_auroc"][1])
    assert math.isnan(got["auroc_y0s0_y1s0"][1])
    # the worst pair is taken over the pairs still defined
    defined = [got[p][1] for p in PAIR_NAMES if not math.isnan(got[p][1])]
    assert got["worst_pair_auroc"][1] == pytest.approx(min(defined))


def test_subgroup_counts():
    assert subgroup_counts(Y, S) == {"y0s0": 1, "y0s1": 3, "y1s0": 3, "y1s1": 1}
    assert subgroup_counts(torch.tensor(Y), torch.tensor(S)) == {"y0s0": 1, "y0s1": 3, "y1s0": 3, "y1s1": 1}


def test_stratified_weights_keep_every_subgroup_size_and_are_seeded():
    score, y, s = _data(97, seed=5)
    weights = stratified_weights(y, s, 300, seed=11)
    assert weights.shape == (300, 97) and weights.min() >= 0
    for (a, b), count in zip(((0, 0), (0, 1), (1, 0), (1, 1)), subgroup_counts(y, s).values()):
        members = (y == a) & (s == b)
        assert np.all(weights[:, members].sum(axis=1) == count)
    # resamples differ from each other and from the sample, and images are drawn more than once
    assert len({row.tobytes() for row in weights}) == 300 and weights.max() > 1
    assert np.array_equal(weights, stratified_weights(y, s, 300, seed=11))
    assert not np.array_equal(weights, stratified_weights(y, s, 300, seed=12))


def test_intervals_equal_brute_force_percentiles():
    score, y, s = _data(40, seed=7)
    n = 200
    intervals = bootstrap_intervals(score, y, s, n_resamples=n, seed=2)
    brute = _brute_force(score, y, s, stratified_weights(y, s, n, seed=2))
    for name in FIGURE_NAMES:
        expected = np.quantile(brute[name], [0.025, 0.975])
        assert intervals[name] == pytest.approx(tuple(expected), abs=1e-12), name


def test_intervals_contain_the_estimate_and_are_reproducible():
    score, y, s = _data(400, seed=8)
    point = subgroup_aurocs(score, y, s)
    intervals = bootstrap_intervals(score, y, s, n_resamples=500, seed=0)
    for name in FIGURE_NAMES:
        low, high = intervals[name]
        assert low < point[name] < high, name
    assert intervals == bootstrap_intervals(score, y, s, n_resamples=500, seed=0)
    assert intervals != bootstrap_intervals(score, y, s, n_resamples=500, seed=1)
    # a narrower coverage gives a narrower interval inside the wider one
    narrow = bootstrap_intervals(score, y, s, n_resamples=500, seed=0, confidence=0.5)["robust_auroc"]
    assert intervals["robust_auroc"][0] < narrow[0] < narrow[1] < intervals["robust_auroc"][1]


def test_interval_narrows_with_more_images():
    def width(n):
        low, high = bootstrap_intervals(*_data(n, seed=9, rounding=3), n_resamples=400, seed=0)["robust_auroc"]
        return high - low

    small, large = width(200), width(2000)
    # the standard error falls like 1 / sqrt(n): ten times the images, about a third of the width
    assert large < 0.6 * small


def test_undefined_figure_has_nan_interval_and_perfect_one_zero_width():
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0, 1, 1, 1, 1, 1])  # no (y=1, s=0) image: the robust AUROC is undefined
    score = np.array([0.1, 0.2, 0.9, 0.8, 0.3, 0.7])
    intervals = bootstrap_intervals(score, y, s, n_resamples=50, seed=0)
    assert all(math.isnan(v) for v in intervals["robust_auroc"])
    assert all(math.isnan(v) for v in intervals["auroc_y0s0_y1s0"])
    # every positive above every negative: 1.0 in every resample
    assert intervals["overall_auroc"] == (1.0, 1.0)
    assert intervals["worst_pair_auroc"] == (1.0, 1.0)


@pytest.mark.parametrize("kwargs, message", [({"n_resamples": 0}, "n_resamples"), ({"n_resamples": 2.5}, "n_resamples"),
                                             ({"confidence": 1.0}, "confidence"), ({"confidence": 0}, "confidence")])
def test_parameters_are_validated(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_intervals(SCORE, Y, S, **kwargs)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="weights must have shape"):
        weighted_aurocs(SCORE, Y, S, np.ones((2, 3)))
    with pytest.raises(ValueError, match="figure must be one of"):
        paired_bootstrap_difference(SCORE, SCORE, Y, S, figure="dice")
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap_difference(SCORE, SCORE[:-1], Y, S)


@pytest.mark.parametrize("fn, names", [
    (weighted_aurocs, ["y_pred", "y", "s", "weights"]),
    (bootstrap_intervals, ["y_pred", "y", "s"]),
    (paired_bootstrap_difference, ["y_pred_a", "y_pred_b", "y", "s"]),
    (subgroup_counts, ["y", "s"]),
    (stratified_weights, ["y", "s"]),
])
def test_monai_argument_names(fn, names):
    """Scores first, then the image label y and the spurious label s: MONAI's compute_roc_auc(y_pred, y) names."""
    assert list(inspect.signature(fn).parameters)[:len(names)] == names


def test_keyword_calls():
    assert bootstrap_intervals(s=S, y=Y, y_pred=SCORE, n_resamples=50) == bootstrap_intervals(SCORE, Y, S, 50)
    assert subgroup_counts(s=S, y=Y) == subgroup_counts(Y, S)
    assert paired_bootstrap_difference(y_pred_a=SCORE, y_pred_b=SCORE, y=Y, s=S, n_resamples=20).p_value == 1.0


def test_identical_scores_differ_by_zero_with_p_one():
    score, y, s = _data(200, seed=10)
    result = paired_bootstrap_difference(score, score.copy(), y, s, n_resamples=300, seed=0)
    assert result.difference == 0.0
    assert (result.ci_low, result.ci_high) == (0.0, 0.0)
    assert result.p_value == 1.0
    assert result.estimate_a == result.estimate_b == pytest.approx(subgroup_aurocs(score, y, s)["robust_auroc"])


def test_clearly_better_model_has_small_p_and_positive_difference():
    y, s = _data(300, seed=11)[1:]
    noise = np.random.default_rng(12).normal(size=len(y))
    shortcut = noise + 2.0 * s  # reads the spurious feature: robust AUROC far below 0.5
    lesion = noise + 2.0 * y    # reads the abnormality
    n = 400
    result = paired_bootstrap_difference(shortcut, lesion, y, s, n_resamples=n, seed=0)
    assert result.estimate_a < 0.3 and result.estimate_b > 0.8
    assert result.difference == pytest.approx(result.estimate_b - result.estimate_a)
    assert 0 < result.ci_low < result.difference < result.ci_high
    assert result.p_value == pytest.approx(1 / (n + 1))  # no resample is as far from the observed as 0 is
    # the same comparison the other way round: the difference changes sign, the p-value does not
    reverse = paired_bootstrap_difference(lesion, shortcut, y, s, n_resamples=n, seed=0)
    assert reverse.difference == pytest.approx(-result.difference)
    assert (reverse.ci_low, reverse.ci_high) == pytest.approx((-result.ci_high, -result.ci_low))
    assert reverse.p_value == result.p_value


def test_paired_difference_equals_brute_force():
    score_a, y, s = _data(60, seed=13)
    score_b = score_a + np.random.default_rng(14).normal(scale=0.8, size=len(y))
    n = 150
    result = paired_bootstrap_difference(score_a, score_b, y, s, figure="worst_pair_auroc", n_resamples=n, seed=3)
    weights = stratified_weights(y, s, n, seed=3)
    diffs = _brute_force(score_b, y, s, weights)["worst_pair_auroc"] - _brute_force(score_a, y, s, weights)[
        "worst_pair_auroc"]
    observed = subgroup_aurocs(score_b, y, s)["worst_pair_auroc"] - subgroup_aurocs(score_a, y, s)["worst_pair_auroc"]
    assert result.difference == pytest.approx(observed, abs=1e-12)
    assert (result.ci_low, result.ci_high) == pytest.approx(tuple(np.quantile(diffs, [0.025, 0.975])), abs=1e-12)
    extreme = np.sum(np.abs(diffs - observed) >= abs(observed) - 1e-12)
    assert result.p_value == pytest.approx((1 + extreme) / (1 + n))
    assert 0 < result.p_value < 1 and result.n_images == 60


def test_pooled_difference_is_the_mean_over_samples():
    first, second = _data(120, seed=15), _data(150, seed=16)
    samples = [(sc, sc + 1.5 * y, y, s) for sc, y, s in (first, second)]
    pooled = pooled_paired_bootstrap_difference(samples, n_resamples=200, seed=0)
    singles = [paired_bootstrap_difference(*sample, n_resamples=200, seed=0) for sample in samples]
    assert pooled.difference == pytest.approx(np.mean([d.difference for d in singles]))
    assert pooled.estimate_a == pytest.approx(np.mean([d.estimate_a for d in singles]))
    assert pooled.n_images == 270
    assert pooled.ci_low < pooled.difference < pooled.ci_high
    # one sample: the pooled test is the single test
    assert pooled_paired_bootstrap_difference(samples[:1], n_resamples=200, seed=0) == singles[0]


def test_seed_mean_interval():
    samples = [_data(300, seed=17), _data(300, seed=18)]
    # one model: the interval of its figure
    single = seed_mean_interval(samples[:1], "overall_auroc", n_resamples=300, seed=4)
    assert single == bootstrap_intervals(*samples[0], n_resamples=300, seed=4)["overall_auroc"]
    # two models: around the mean of their figures, narrower than either alone (independent test sets average out)
    low, high = seed_mean_interval(samples, "robust_auroc", n_resamples=300, seed=4)
    mean = np.mean([subgroup_aurocs(*d)["robust_auroc"] for d in samples])
    assert low < mean < high
    widths = [np.subtract(*bootstrap_intervals(*d, n_resamples=300, seed=4)["robust_auroc"][::-1]) for d in samples]
    assert high - low < min(widths)
    with pytest.raises(ValueError, match="at least one"):
        seed_mean_interval([], "robust_auroc")


def test_cumulative_metric_reports_bounds_only_when_asked():
    score, y, s = _data(80, seed=19)
    plain = RobustAUROCMetric()
    plain(torch.tensor(score), torch.tensor(y), torch.tensor(s))
    assert set(plain.aggregate()) == set(FIGURE_NAMES)

    metric = RobustAUROCMetric(bootstrap=100, bootstrap_seed=5)
    for part in np.array_split(np.arange(80), 3):  # accumulated over batches
        metric(torch.tensor(score[part]), torch.tensor(y[part]), torch.tensor(s[part]))
    result = metric.aggregate()
    intervals = bootstrap_intervals(score, y, s, n_resamples=100, seed=5)
    for name in FIGURE_NAMES:
        assert result[f"{name}_ci_low"] == pytest.approx(intervals[name][0])
        assert result[f"{name}_ci_high"] == pytest.approx(intervals[name][1])
    with pytest.raises(ValueError, match="bootstrap"):
        RobustAUROCMetric(bootstrap=-1)
