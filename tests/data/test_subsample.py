"""stratified_subset: determinism, nesting, hand-checked class proportions, errors (label budgets of Sec. 5.2)."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from spatialspec.data.subsample import stratified_order, stratified_subset


def _data(n_neg: int = 30, n_pos: int = 10) -> list[dict]:
    # positives first, so y=1 is the class seen first
    return [{"id": i, "y": int(i < n_pos), "label": f"mask_{i}.nii.gz"} for i in range(n_pos + n_neg)]


def _ids(entries: list[dict]) -> list[int]:
    return [e["id"] for e in entries]


def test_hand_checked_proportions():
    data = _data()  # 10 positives, 30 negatives: a 1:3 split
    # order: one of each class, then j-th negatives at (j + 1/2)/30 = .05, .083, .117, .15, ... and j-th positives at
    # (j + 1/2)/10 = .15, .25, ...: n=4 -> 2 seeds + 2 negatives; n=8 -> 2 seeds + 5 negatives + the positive at .15
    assert Counter(e["y"] for e in stratified_subset(data, 2, seed=0)) == {0: 1, 1: 1}
    assert Counter(e["y"] for e in stratified_subset(data, 4, seed=0)) == {0: 3, 1: 1}
    assert Counter(e["y"] for e in stratified_subset(data, 8, seed=0)) == {0: 6, 1: 2}
    assert Counter(e["y"] for e in stratified_subset(data, 20, seed=5)) == {0: 15, 1: 5}
    assert Counter(e["y"] for e in stratified_subset(data, 40, seed=5)) == {0: 30, 1: 10}


@pytest.mark.parametrize("n_neg, n_pos", [(30, 10), (97, 3), (7, 13), (50, 50)])
def test_two_classes_stay_within_floor_and_ceil_of_their_share(n_neg, n_pos):
    data = _data(n_neg, n_pos)
    total = n_neg + n_pos
    for n in range(2, total + 1):
        positives = sum(e["y"] for e in stratified_subset(data, n, seed=1))
        for count, size in ((positives, n_pos), (n - positives, n_neg)):
            share = n * size / total  # every class keeps at least its first entry
            assert max(1, math.floor(share)) <= count <= max(1, math.ceil(share)), (n, count, share)


def test_deterministic_and_seeded():
    data = _data()
    assert _ids(stratified_subset(data, 12, seed=3)) == _ids(stratified_subset(data, 12, seed=3))
    assert _ids(stratified_subset(data, 12, seed=3)) != _ids(stratified_subset(data, 12, seed=4))


def test_depends_only_on_order_and_class():
    # the same images at another level: other label paths and extra fields give the same subset
    data = _data()
    other_level = [{**e, "label": f"bbox_{e['id']}.nii.gz", "level": "bbox"} for e in data]
    for n in (5, 17, 33):
        assert _ids(stratified_subset(data, n, seed=7)) == _ids(stratified_subset(other_level, n, seed=7))


def test_nested_across_budgets():
    data = _data(70, 30)
    previous: set[int] = set()
    for n in range(2, 101):
        current = set(_ids(stratified_subset(data, n, seed=11)))
        assert len(current) == n
        assert previous <= current
        previous = current


def test_returns_the_entries_in_data_order():
    data = _data()
    subset = stratified_subset(data, 9, seed=2)
    assert _ids(subset) == sorted(_ids(subset))
    assert all(any(e is d for d in data) for e in subset)


def test_order_is_a_permutation_and_every_class_leads():
    data = [{"y": c} for c in [2] * 5 + [0] * 50 + [1] * 20]
    order = stratified_order(data, seed=0)
    assert sorted(order.tolist()) == list(range(len(data)))
    assert {data[i]["y"] for i in order[:3]} == {0, 1, 2}


def test_other_key_and_array_values():
    data = [{"s": np.int64(i % 3), "id": i} for i in range(30)]
    assert Counter(int(e["s"]) for e in stratified_subset(data, 9, seed=0, key="s")) == {0: 3, 1: 3, 2: 3}


def test_errors():
    data = _data()
    with pytest.raises(ValueError, match="n=41 exceeds"):
        stratified_subset(data, 41)
    with pytest.raises(ValueError, match="n=1 is below the number of classes"):
        stratified_subset(data, 1)
    with pytest.raises(ValueError, match="n must be an integer"):
        stratified_subset(data, 2.0)
    with pytest.raises(ValueError, match="seed"):
        stratified_subset(data, 4, seed=-1)
    with pytest.raises(ValueError, match=r"data\[1\] has no class field 'y'"):
        stratified_subset([{"y": 0}, {"x": 1}], 1)
    with pytest.raises(ValueError, match=r"data\[0\] must be a dict"):
        stratified_subset([[0, 1]], 1)
