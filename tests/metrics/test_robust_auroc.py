"""Robust and subgroup AUROCs (spatialspec.metrics.robust_auroc, Sec. 5.1)."""

from __future__ import annotations

import inspect
import math
import re
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from spatialspec.metrics import FIGURE_NAMES, PAIR_NAMES, RobustAUROCMetric, auroc, robust_auroc, subgroup_aurocs

# A hand-made example (score, y, s):
#   0: 0.9, 1, 1
#   1: 0.3, 1, 0   <- robust positive
#   2: 0.9, 1, 0   <- robust positive
#   3: 0.8, 0, 1   <- robust negative
#   4: 0.2, 0, 1   <- robust negative
#   5: 0.1, 0, 0
#   6: 0.5, 1, 0   <- robust positive
#   7: 0.5, 0, 1   <- robust negative
# Robust subset: positives (y=1, s=0) have scores 0.3, 0.9, 0.5; negatives (y=0, s=1) have 0.8, 0.2, 0.5.
# AUROC = P(positive > negative) + 0.5 P(tie) over the 3 x 3 = 9 pairs:
#   0.3 vs 0.8, 0.2, 0.5 -> 0 + 1 + 0   = 1
#   0.9 vs 0.8, 0.2, 0.5 -> 1 + 1 + 1   = 3
#   0.5 vs 0.8, 0.2, 0.5 -> 0 + 1 + 0.5 = 1.5
# total 5.5 / 9 = 11/18.
# Pair y=0,s=0 (0.1) vs y=1,s=1 (0.9): 1/1 = 1.
# Pair y=0,s=0 (0.1) vs y=1,s=0 (0.3, 0.9, 0.5): 3/3 = 1.
# Pair y=0,s=1 (0.8, 0.2, 0.5) vs y=1,s=1 (0.9): 3/3 = 1.
# Overall: positives 0.9, 0.3, 0.9, 0.5; negatives 0.8, 0.2, 0.1, 0.5 -> 16 pairs:
#   0.9 -> 4, 0.3 -> 2 (0.2, 0.1), 0.9 -> 4, 0.5 -> 2 + 0.5 (0.2, 0.1, tie 0.5) => 12.5 / 16.
SCORE = [0.9, 0.3, 0.9, 0.8, 0.2, 0.1, 0.5, 0.5]
Y = [1, 1, 1, 0, 0, 0, 1, 0]
S = [1, 0, 0, 1, 1, 0, 0, 1]


def test_robust_auroc_hand_example():
    assert robust_auroc(SCORE, Y, S) == pytest.approx(11 / 18)


def test_subgroup_aurocs_hand_example():
    report = subgroup_aurocs(SCORE, Y, S)
    assert set(report) == set(FIGURE_NAMES)
    assert report["overall_auroc"] == pytest.approx(12.5 / 16)
    assert report["robust_auroc"] == pytest.approx(11 / 18)
    assert report["auroc_y0s1_y1s0"] == pytest.approx(11 / 18)
    assert report["auroc_y0s0_y1s1"] == pytest.approx(1.0)
    assert report["auroc_y0s0_y1s0"] == pytest.approx(1.0)
    assert report["auroc_y0s1_y1s1"] == pytest.approx(1.0)
    assert report["worst_pair_auroc"] == pytest.approx(11 / 18)


def test_input_types_agree():
    expected = robust_auroc(SCORE, Y, S)
    assert robust_auroc(np.array(SCORE), np.array(Y), np.array(S)) == expected
    assert robust_auroc(torch.tensor(SCORE), torch.tensor(Y), torch.tensor(S).bool()) == expected
    assert robust_auroc(np.array(SCORE)[:, None], np.array(Y)[:, None], np.array(S)) == expected


def test_spurious_reader_scores_zero_robust_auroc():
    """A model that reads only s ranks the broken-correlation images backwards (robust AUROC 0)."""
    y = np.array([1, 1, 0, 0, 1, 0])
    s = np.array([1, 0, 1, 0, 0, 1])
    assert robust_auroc(s.astype(float), y, s) == 0.0
    assert robust_auroc(y.astype(float), y, s) == 1.0


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_subgroup_aurocs_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = 200
    y = rng.integers(0, 2, n)
    s = rng.integers(0, 2, n)
    score = rng.random(n) + 0.3 * y - 0.2 * s
    if seed % 2:
        score = np.round(score, 1)  # ties
    report = subgroup_aurocs(score, y, s)
    assert set(report) == set(FIGURE_NAMES)
    assert report["overall_auroc"] == pytest.approx(roc_auc_score(y, score))
    pairs = {}
    for ns in (0, 1):
        for ps in (0, 1):
            keep = ((y == 0) & (s == ns)) | ((y == 1) & (s == ps))
            pairs[f"auroc_y0s{ns}_y1s{ps}"] = roc_auc_score(y[keep], score[keep])
    assert set(pairs) == set(PAIR_NAMES)
    for name, value in pairs.items():
        assert report[name] == pytest.approx(value), name
    keep = y != s
    assert report["robust_auroc"] == pytest.approx(roc_auc_score(y[keep], score[keep]))
    assert report["robust_auroc"] == report["auroc_y0s1_y1s0"]
    assert robust_auroc(score, y, s) == report["robust_auroc"]
    assert report["worst_pair_auroc"] == min(report[name] for name in PAIR_NAMES)
    assert auroc(score, y) == pytest.approx(roc_auc_score(y, score))


def test_one_class_subset_gives_nan_and_warning():
    # no (y=0, s=0) images: the two pairs with that negative subgroup are undefined
    score = [0.9, 0.3, 0.7, 0.4, 0.6]
    y = [1, 1, 0, 0, 1]
    s = [1, 0, 1, 1, 0]
    with pytest.warns(RuntimeWarning, match=re.escape("y=0,s=0 vs y=1,s=0")), \
            pytest.warns(RuntimeWarning, match=re.escape("y=0,s=0 vs y=1,s=1")):
        report = subgroup_aurocs(score, y, s)
    assert math.isnan(report["auroc_y0s0_y1s0"])
    assert math.isnan(report["auroc_y0s0_y1s1"])
    # the others are defined; worst pair is the min of the defined ones
    assert report["auroc_y0s1_y1s0"] == pytest.approx(roc_auc_score([0, 0, 1, 1], [0.7, 0.4, 0.3, 0.6]))
    assert report["auroc_y0s1_y1s1"] == pytest.approx(1.0)
    assert report["worst_pair_auroc"] == report["auroc_y0s1_y1s0"]
    assert not math.isnan(report["overall_auroc"])


def test_one_class_warning_names_each_subset():
    score = [0.9, 0.3, 0.7, 0.4, 0.6]
    y = [1, 1, 0, 0, 1]
    s = [1, 0, 1, 1, 0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        subgroup_aurocs(score, y, s)
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert any("y=0,s=0 vs y=1,s=0" in m for m in messages)
    assert any("y=0,s=0 vs y=1,s=1" in m for m in messages)
    assert len(messages) == 2


def test_robust_subset_one_class():
    # every image follows the training correlation: the robust subset is empty
    with pytest.warns(RuntimeWarning, match=re.escape("robust")):
        value = robust_auroc([0.2, 0.9, 0.1], [0, 1, 0], [0, 1, 0])
    assert math.isnan(value)
    # only abnormal images: every figure is undefined, one warning per figure, no crash
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = subgroup_aurocs([0.2, 0.9], [1, 1], [0, 1])
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 6
    for subset in ("'overall'", "robust", "y=0,s=0 vs y=1,s=0", "y=0,s=0 vs y=1,s=1", "y=0,s=1 vs y=1,s=0",
                   "y=0,s=1 vs y=1,s=1"):
        assert any(subset in m for m in messages), subset
    assert all(math.isnan(report[name]) for name in FIGURE_NAMES)


def test_auroc_subset_name_in_warning():
    with pytest.warns(RuntimeWarning, match="'my subset'"):
        assert math.isnan(auroc([0.1, 0.2], [1, 1], subset="my subset"))


@pytest.mark.parametrize(
    "args",
    [
        ([0.1, 0.2, 0.3], [0, 1], [0, 1, 0]),
        ([0.1, 0.2], [0, 1], [0, 1, 0]),
        ([0.1, 0.2, 0.3], [0, 1, 1], [0, 1]),
    ],
)
def test_mismatched_lengths(args):
    with pytest.raises(ValueError, match="same length"):
        robust_auroc(*args)
    with pytest.raises(ValueError, match="same length"):
        subgroup_aurocs(*args)


def test_bad_values():
    with pytest.raises(ValueError, match="^y must hold only 0 and 1"):
        robust_auroc([0.1, 0.2], [0, 2], [0, 1])
    with pytest.raises(ValueError, match="^s must hold only 0 and 1"):
        robust_auroc([0.1, 0.2], [0, 1], [0, 0.5])
    with pytest.raises(ValueError, match="^y_pred holds NaN"):
        robust_auroc([0.1, float("nan")], [0, 1], [0, 1])


def test_monai_argument_names():
    """(y_pred, y, s) in the order and with the names of MONAI's compute_roc_auc(y_pred, y), by keyword too."""
    from monai.metrics import compute_roc_auc

    assert list(inspect.signature(compute_roc_auc).parameters)[:2] == ["y_pred", "y"]
    assert list(inspect.signature(auroc).parameters)[:2] == ["y_pred", "y"]
    for fn in (robust_auroc, subgroup_aurocs):
        assert list(inspect.signature(fn).parameters) == ["y_pred", "y", "s"]
    assert robust_auroc(s=S, y=Y, y_pred=SCORE) == robust_auroc(SCORE, Y, S)
    assert subgroup_aurocs(s=S, y=Y, y_pred=SCORE) == subgroup_aurocs(SCORE, Y, S)
    assert auroc(y=Y, y_pred=SCORE) == auroc(SCORE, Y)
    assert list(inspect.signature(RobustAUROCMetric.__call__).parameters) == ["self", "y_pred", "y", "s"]
    metric = RobustAUROCMetric()
    metric(s=torch.tensor(S), y=torch.tensor(Y), y_pred=torch.tensor(SCORE))
    assert metric.aggregate()["robust_auroc"] == pytest.approx(11 / 18)


# ---------------------------------------------------------------------------------------------------- metric


def _random(seed: int, n: int = 90):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    s = rng.integers(0, 2, n)
    score = rng.random(n) + 0.5 * y
    return score, y, s


def test_metric_accumulates_and_equals_one_shot():
    score, y, s = _random(0)
    metric = RobustAUROCMetric()
    for lo, hi in ((0, 10), (10, 11), (11, 50), (50, 90)):
        metric(torch.as_tensor(score[lo:hi]), torch.as_tensor(y[lo:hi]), torch.as_tensor(s[lo:hi]))
    result = metric.aggregate()
    expected = subgroup_aurocs(score, y, s)
    assert set(result) == set(FIGURE_NAMES)
    for name in FIGURE_NAMES:
        assert result[name] == pytest.approx(expected[name]), name
    # a partial accumulation differs from the whole
    partial = RobustAUROCMetric()
    partial(score[:50], y[:50], s[:50])
    assert partial.aggregate()["overall_auroc"] == pytest.approx(subgroup_aurocs(score[:50], y[:50], s[:50])[
        "overall_auroc"])
    assert partial.aggregate()["overall_auroc"] != pytest.approx(expected["overall_auroc"])


def test_metric_accepts_column_tensors_and_lists():
    score, y, s = _random(1, 40)
    metric = RobustAUROCMetric()
    metric(torch.as_tensor(score[:20])[:, None], torch.as_tensor(y[:20])[:, None], list(s[:20]))
    metric(list(score[20:]), list(y[20:]), torch.as_tensor(s[20:]).bool())
    assert metric.aggregate()["robust_auroc"] == pytest.approx(robust_auroc(score, y, s))


def test_metric_reset():
    score, y, s = _random(2)
    metric = RobustAUROCMetric()
    metric(score, y, s)
    first = metric.aggregate()
    metric.reset()
    with pytest.raises(ValueError, match="no data"):
        metric.aggregate()
    other_score, other_y, other_s = _random(3)
    metric(other_score, other_y, other_s)
    after = metric.aggregate()
    assert after["overall_auroc"] == pytest.approx(subgroup_aurocs(other_score, other_y, other_s)["overall_auroc"])
    assert after["overall_auroc"] != pytest.approx(first["overall_auroc"])


def test_metric_aggregate_without_data():
    with pytest.raises(ValueError, match="no data"):
        RobustAUROCMetric().aggregate()


def test_metric_mismatched_lengths():
    metric = RobustAUROCMetric()
    with pytest.raises(ValueError, match="one value per image"):
        metric(torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0, 1]), torch.tensor([0, 1, 1]))
    with pytest.raises(ValueError, match="no data"):
        metric.aggregate()  # the bad batch was not added


def test_metric_docstring_example():
    metric = RobustAUROCMetric()
    metric(torch.tensor([0.9, 0.2, 0.8, 0.1]), torch.tensor([1, 0, 1, 0]), torch.tensor([0, 1, 1, 0]))
    assert metric.aggregate()["robust_auroc"] == 1.0
