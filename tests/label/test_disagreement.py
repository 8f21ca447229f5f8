"""Shortcut disagreement ranking (spatialspec.label.disagreement)."""

from __future__ import annotations

import numpy as np
import pytest

from spatialspec.label import (
    percentile_ranks,
    rank_by_disagreement,
    shortcut_disagreement,
)
from spatialspec.label.disagreement import METHODS, standardized_logits


def test_disagreement_is_the_absolute_probability_gap():
    rng = np.random.default_rng(0)
    binary, location = rng.random(50), rng.random(50)
    gap = shortcut_disagreement(binary, location)
    for b, loc, g in zip(binary, location, gap):
        assert g == pytest.approx(max(b, loc) - min(b, loc))
    assert shortcut_disagreement(0.9, 0.1) == pytest.approx(0.8)


@pytest.mark.parametrize(("binary", "location", "name"), [
    ([0.2, 1.5], [0.1, 0.1], "binary_probability"),
    ([0.2, 0.5], [0.1, float("nan")], "location_probability"),
    ([0.2, 0.5], [-0.1, 0.3], "location_probability"),
])
def test_out_of_range_probabilities_name_the_argument(binary, location, name):
    with pytest.raises(ValueError, match=name):
        shortcut_disagreement(binary, location)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        shortcut_disagreement([0.1, 0.2], [0.1])


def test_probability_ranking_orders_by_gap_and_keeps_id_order_on_ties():
    binary = {"c": 0.9, "a": 0.5, "b": 0.5, "d": 0.2}
    location = {"c": 0.1, "a": 0.3, "b": 0.3, "d": 0.2}
    ranking = rank_by_disagreement(binary, location, method="probability")
    assert [r["id"] for r in ranking] == ["c", "a", "b", "d"]
    assert ranking[0]["disagreement"] == pytest.approx(0.8)
    assert (ranking[0]["binary_probability"], ranking[0]["location_probability"]) == (0.9, 0.1)
    assert ranking[-1]["disagreement"] == 0.0


def test_percentile_ranks_and_standardized_logits():
    assert percentile_ranks([0.3, 0.1, 0.9, 0.1]).tolist() == [2 / 3, 1 / 6, 1.0, 1 / 6]
    assert percentile_ranks([0.4]).tolist() == [0.5]
    p = np.array([0.2, 0.5, 0.9, 0.99])
    logits = np.log(p / (1 - p))
    assert np.allclose(standardized_logits(p), (logits - logits.mean()) / logits.std())
    assert standardized_logits([0.3, 0.3]).tolist() == [0.0, 0.0]
    assert np.isfinite(standardized_logits([0.0, 1.0])).all()  # clipped


def _shortcut_pool(rng, n=400):
    """A shortcut-reliant binary model (its score follows s) and a location model (its score follows y), on two
    different scales: the location model's mean readout of a small lesion stays near 0."""
    y, s = rng.integers(0, 2, n), rng.integers(0, 2, n)
    binary = 1 / (1 + np.exp(-(4.0 * s - 2.0 + rng.normal(0, 0.5, n))))
    location = 1 / (1 + np.exp(-(2.0 * y - 6.0 + rng.normal(0, 0.5, n))))
    ids = [f"i{k:03d}" for k in range(n)]
    return dict(zip(ids, binary)), dict(zip(ids, location)), dict(zip(ids, y != s))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_logit_method_surfaces_the_shortcut_conflicts_first(seed):
    binary, location, conflicting = _shortcut_pool(np.random.default_rng(seed))
    top = {m: np.mean([conflicting[r["id"]] for r in rank_by_disagreement(binary, location, m)[:40]])
           for m in METHODS}
    assert top["logit"] == 1.0
    # the raw gap follows the binary model's scale instead
    assert top["probability"] < 0.75


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="method must be one of"):
        rank_by_disagreement({"a": 0.1}, {"a": 0.2}, method="kl")


def test_ranking_needs_the_same_images():
    with pytest.raises(ValueError, match="unmatched: \\['b'\\]"):
        rank_by_disagreement({"a": 0.1, "b": 0.2}, {"a": 0.3})
