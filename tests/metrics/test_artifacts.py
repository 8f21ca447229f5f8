"""Per-artifact AUROC gaps (spatialspec.metrics.artifacts, Sec. 5.1)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from spatialspec.metrics.artifacts import artifact_auroc_gaps

# A hand-made test set (score, y, hair, ruler):
#   0: 0.9, 1, 1, 0
#   1: 0.4, 1, 1, 0
#   2: 0.6, 0, 1, 1
#   3: 0.1, 0, 1, 1
#   4: 0.8, 1, 0, 0
#   5: 0.7, 1, 0, 0
#   6: 0.3, 0, 0, 0
#   7: 0.7, 0, 0, 0
# hair, with: positives 0.9, 0.4 vs negatives 0.6, 0.1 -> 0.9 beats both, 0.4 beats 0.1 only: 3 / 4 = 0.75
# hair, without: positives 0.8, 0.7 vs negatives 0.3, 0.7 -> 0.8: 2, 0.7: 1 + tie 0.5: 3.5 / 4 = 0.875
# hair gap = 0.875 - 0.75 = 0.125
# ruler, with: two negatives only -> undefined (NaN, warning); gap NaN
# ruler, without: positives 0.9, 0.4, 0.8, 0.7 vs negatives 0.3, 0.7 -> 2 + 1 + 2 + 1.5 = 6.5 / 8 = 0.8125
# ink (never present), with: no image -> NaN; without: every image:
#   positives 0.9, 0.4, 0.8, 0.7 vs negatives 0.6, 0.1, 0.3, 0.7 -> 4 + 2 + 4 + 3.5 = 13.5 / 16 = 0.84375
SCORES = [0.9, 0.4, 0.6, 0.1, 0.8, 0.7, 0.3, 0.7]
Y = [1, 1, 0, 0, 1, 1, 0, 0]
HAIR = [1, 1, 1, 1, 0, 0, 0, 0]
RULER = [0, 0, 1, 1, 0, 0, 0, 0]
INK = [0] * 8


def test_hand_computed_gaps():
    with pytest.warns(RuntimeWarning) as record:
        report = artifact_auroc_gaps(SCORES, Y, {"hair": HAIR, "ruler": RULER, "ink": INK})
    assert report["hair"] == {"auroc_with": 0.75, "auroc_without": 0.875, "gap": 0.125, "n_with": 4, "n_without": 4}
    assert math.isnan(report["ruler"]["auroc_with"]) and math.isnan(report["ruler"]["gap"])
    assert report["ruler"]["auroc_without"] == 0.8125
    assert (report["ruler"]["n_with"], report["ruler"]["n_without"]) == (2, 6)
    assert math.isnan(report["ink"]["auroc_with"]) and report["ink"]["auroc_without"] == 0.84375
    assert (report["ink"]["n_with"], report["ink"]["n_without"]) == (0, 8)
    messages = [str(w.message) for w in record]
    assert any("with artifact 'ruler'" in m for m in messages)
    assert any("with artifact 'ink'" in m for m in messages)
    assert not any("hair" in m for m in messages)


def test_matches_sklearn_on_random_data():
    rng = np.random.default_rng(0)
    n = 300
    y = rng.integers(0, 2, n)
    flags = {name: rng.integers(0, 2, n) for name in ("dark_corner", "gel_bubble")}
    scores = rng.random(n) + 0.5 * y - 0.4 * flags["gel_bubble"] * y
    report = artifact_auroc_gaps(torch.tensor(scores), y.tolist(), flags)
    for name, flag in flags.items():
        with_, without = flag == 1, flag == 0
        expected_with = roc_auc_score(y[with_], scores[with_])
        expected_without = roc_auc_score(y[without], scores[without])
        assert report[name]["auroc_with"] == pytest.approx(expected_with)
        assert report[name]["auroc_without"] == pytest.approx(expected_without)
        assert report[name]["gap"] == pytest.approx(expected_without - expected_with)
    # the artifact that lowers the malignant scores opens the larger gap
    assert report["gel_bubble"]["gap"] > report["dark_corner"]["gap"]


@pytest.mark.parametrize("kwargs, message", [
    ({"y_pred": SCORES[:-1]}, "same length"),
    ({"y": [2] + Y[1:]}, "y must hold only 0 and 1"),
    ({"flags": {"hair": HAIR[:-1]}}, r"flags\['hair'\] has 7 values"),
    ({"flags": {"hair": [2] + HAIR[1:]}}, r"flags\['hair'\] must hold only 0 and 1"),
    ({"y_pred": [math.nan] + SCORES[1:]}, "y_pred holds NaN"),
])
def test_errors(kwargs, message):
    args = {"y_pred": SCORES, "y": Y, "flags": {"hair": HAIR}} | kwargs
    with pytest.raises(ValueError, match=message):
        artifact_auroc_gaps(**args)


def test_no_flags_gives_empty_report():
    assert artifact_auroc_gaps(SCORES, Y, {}) == {}
