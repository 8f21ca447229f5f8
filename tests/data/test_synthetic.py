"""The synthetic data model (Sec. 3.2.2): the generator's laws on a large-ish sample, and parameter validation."""

from __future__ import annotations

import itertools
import math
import re

import numpy as np
import pytest
from scipy import stats

from spatialspec.data import SPLITS, SyntheticParams, generate_split, parse_synthetic_overrides

PARAMS = SyntheticParams(m=4000, n=20, a=4, b=6, mu_y=0.6, rho=0.8, mu_a=2.0, mu_s=-10.0, sigma=1.5, n_val=2000,
                         n_test=4000)
SEED = 123


def binom_tol(p: float, count: int, k: float = 4.0) -> float:
    """k binomial standard deviations of a frequency estimated from ``count`` draws."""
    return k * math.sqrt(p * (1 - p) / count)


@pytest.fixture(scope="module")
def splits() -> dict[str, list[dict]]:
    return {split: generate_split(PARAMS, split, SEED) for split in SPLITS}


def _ys(samples):
    return np.array([d["y"] for d in samples]), np.array([d["s"] for d in samples])


def _top_left(mask: np.ndarray) -> tuple[int, int]:
    rows, cols = np.nonzero(mask[0])
    return int(rows.min()), int(cols.min())


# ---------------------------------------------------------------------------------------------------- labels


@pytest.mark.parametrize("split", SPLITS)
def test_sizes_and_y_frequency(splits, split):
    samples = splits[split]
    assert len(samples) == PARAMS.split_size(split) == {"training": 4000, "validation": 2000, "test": 4000}[split]
    y, _ = _ys(samples)
    assert set(np.unique(y)) <= {0, 1}
    assert abs(y.mean() - PARAMS.mu_y) < binom_tol(PARAMS.mu_y, len(y))


def test_training_spurious_correlation(splits):
    y, s = _ys(splits["training"])
    assert s[y == 0].sum() == 0  # P(s = 1 | y = 0) = 0 exactly
    p = s[y == 1].mean()
    assert abs(p - PARAMS.rho) < binom_tol(PARAMS.rho, int((y == 1).sum()))


@pytest.mark.parametrize("rho", [0.0, 1.0])
def test_training_rho_extremes(rho):
    samples = generate_split(SyntheticParams(m=300, n=12, a=3, b=4, mu_y=0.5, rho=rho), "training", 0)
    y, s = _ys(samples)
    assert 0 < y.sum() < len(y)
    np.testing.assert_array_equal(s, y if rho == 1.0 else np.zeros_like(y))


@pytest.mark.parametrize("split", ["validation", "test"])
def test_eval_splits_s_independent_of_y(splits, split):
    y, s = _ys(splits[split])
    for value in (0, 1):
        group = s[y == value]
        assert len(group) > 500
        assert abs(group.mean() - 0.5) < binom_tol(0.5, len(group)), (split, value, group.mean())
    # both (y=0, s=1) and (y=1, s=0) exist: the training correlation is broken
    assert ((y == 0) & (s == 1)).sum() > 0 and ((y == 1) & (s == 0)).sum() > 0


@pytest.mark.parametrize("split", SPLITS)
def test_labels_agree_with_masks(splits, split):
    for d in splits[split]:
        assert d["y"] == int(d["label"].any())
        assert d["s"] == int(d["spurious_mask"].any())
        assert isinstance(d["y"], int) and isinstance(d["s"], int)


# ---------------------------------------------------------------------------------------------------- masks


@pytest.mark.parametrize("split", SPLITS)
def test_blocks_are_squares_of_the_right_size(splits, split):
    a, b = PARAMS.a, PARAMS.b
    for d in splits[split]:
        for mask, present, side in ((d["label"], d["y"], a), (d["spurious_mask"], d["s"], b)):
            assert set(np.unique(mask)) <= {0.0, 1.0}
            if not present:
                assert mask.sum() == 0
                continue
            assert mask.sum() == side * side
            r, c = _top_left(mask)
            assert r + side <= PARAMS.n and c + side <= PARAMS.n
            assert mask[0, r : r + side, c : c + side].all()


@pytest.mark.parametrize("split", SPLITS)
def test_masks_never_overlap(splits, split):
    both = 0
    for d in splits[split]:
        assert not (d["label"] * d["spurious_mask"]).any()
        both += d["y"] and d["s"]
    assert both > 100  # the non-overlap rule was exercised


@pytest.mark.parametrize("split", SPLITS)
def test_shapes_and_dtypes(splits, split):
    n = PARAMS.n
    ids = set()
    for d in splits[split][:200]:
        for key in ("image", "label", "spurious_mask"):
            assert isinstance(d[key], np.ndarray)
            assert d[key].shape == (1, n, n)
            assert d[key].dtype == np.float32
        assert d["id"].startswith(split)
        ids.add(d["id"])
    assert len(ids) == 200


# ---------------------------------------------------------------------------------------------------- pixels


@pytest.mark.parametrize("split", SPLITS)
def test_pixel_distributions(splits, split):
    images = np.stack([d["image"] for d in splits[split]])
    in_y = np.stack([d["label"] for d in splits[split]]) > 0
    in_s = np.stack([d["spurious_mask"] for d in splits[split]]) > 0
    background = ~in_y & ~in_s
    for region, mean in ((in_y, PARAMS.mu_a), (in_s, PARAMS.mu_s), (background, 0.0)):
        values = images[region].astype(np.float64)
        assert values.size > 10_000
        tol_mean = 5 * PARAMS.sigma / math.sqrt(values.size)
        assert abs(values.mean() - mean) < tol_mean, (split, mean, values.mean())
        assert abs(values.std() - PARAMS.sigma) < 0.02 * PARAMS.sigma, (split, mean, values.std())


def test_pixel_means_follow_parameters():
    p = SyntheticParams(m=200, n=12, a=4, b=4, mu_y=1.0, rho=1.0, mu_a=5.0, mu_s=3.0, sigma=0.1)
    samples = generate_split(p, "training", 1)
    images = np.stack([d["image"] for d in samples])
    y_mask = np.stack([d["label"] for d in samples]) > 0
    s_mask = np.stack([d["spurious_mask"] for d in samples]) > 0
    assert abs(images[y_mask].mean() - 5.0) < 0.01
    assert abs(images[s_mask].mean() - 3.0) < 0.01
    assert abs(images[~y_mask & ~s_mask].mean()) < 0.01
    assert abs(images[~y_mask & ~s_mask].std() - 0.1) < 0.005


# ---------------------------------------------------------------------------------------------------- placement


def _chi2_uniform_pvalue(values: np.ndarray, support: int) -> float:
    counts = np.bincount(values, minlength=support)
    assert len(counts) == support
    return float(stats.chisquare(counts).pvalue)


def test_abnormal_block_placement_uniform_when_alone(splits):
    """y=1, s=0: the a x a block's top-left row and column are uniform over 0..n-a."""
    corners = [_top_left(d["label"]) for split in SPLITS for d in splits[split] if d["y"] == 1 and d["s"] == 0]
    assert len(corners) > 1000
    rows, cols = np.array(corners).T
    support = PARAMS.n - PARAMS.a + 1
    for values in (rows, cols):
        assert values.min() == 0 and values.max() == support - 1
        assert _chi2_uniform_pvalue(values, support) > 1e-4


def test_spurious_block_placement_uniform_when_alone(splits):
    corners = [_top_left(d["spurious_mask"]) for split in ("validation", "test") for d in splits[split]
               if d["y"] == 0 and d["s"] == 1]
    assert len(corners) > 500
    rows, cols = np.array(corners).T
    support = PARAMS.n - PARAMS.b + 1
    for values in (rows, cols):
        assert values.min() == 0 and values.max() == support - 1
        assert _chi2_uniform_pvalue(values, support) > 1e-4


def test_pair_placement_uniform_over_non_overlapping_pairs():
    """y=1, s=1: the (a-block, b-block) pair is uniform over all non-overlapping placements."""
    n, a, b = 6, 2, 3
    p = SyntheticParams(m=15000, n=n, a=a, b=b, mu_y=1.0, rho=1.0)
    valid = []
    for ar, ac, br, bc in itertools.product(range(n - a + 1), range(n - a + 1), range(n - b + 1), range(n - b + 1)):
        apart_rows = br + b <= ar or br >= ar + a
        apart_cols = bc + b <= ac or bc >= ac + a
        if apart_rows or apart_cols:
            valid.append((ar, ac, br, bc))
    index = {v: i for i, v in enumerate(valid)}
    counts = np.zeros(len(valid), np.int64)
    for d in generate_split(p, "training", 5):
        key = (*_top_left(d["label"]), *_top_left(d["spurious_mask"]))
        assert key in index, key  # never an overlapping placement
        counts[index[key]] += 1
    assert (counts > 0).all()  # every valid placement occurs
    assert stats.chisquare(counts).pvalue > 1e-4


# ---------------------------------------------------------------------------------------------------- seeds


def test_reproducible_with_same_seed():
    p = SyntheticParams(m=50, n=16, a=4, b=6, n_val=30, n_test=40)
    for split in SPLITS:
        first, second = generate_split(p, split, 7), generate_split(p, split, 7)
        assert len(first) == len(second)
        for d1, d2 in zip(first, second):
            assert d1["y"] == d2["y"] and d1["s"] == d2["s"] and d1["id"] == d2["id"]
            for key in ("image", "label", "spurious_mask"):
                np.testing.assert_array_equal(d1[key], d2[key])


def test_different_seed_gives_different_data():
    p = SyntheticParams(m=50, n=16, a=4, b=6)
    first, other = generate_split(p, "training", 7), generate_split(p, "training", 8)
    images_equal = [np.array_equal(d1["image"], d2["image"]) for d1, d2 in zip(first, other)]
    assert not any(images_equal)
    assert [d["y"] for d in first] != [d["y"] for d in other] or [
        _top_left(d["label"]) for d in first if d["y"]] != [_top_left(d["label"]) for d in other if d["y"]]


def test_splits_differ():
    p = SyntheticParams(m=40, n=16, a=4, b=6, n_val=40, n_test=40)
    data = {split: generate_split(p, split, 0) for split in SPLITS}
    for s1, s2 in itertools.combinations(SPLITS, 2):
        assert not any(np.array_equal(d1["image"], d2["image"]) for d1, d2 in zip(data[s1], data[s2])), (s1, s2)
    assert not any(d["id"] in {e["id"] for e in data["test"]} for d in data["validation"])


def test_default_params_are_the_papers():
    p = SyntheticParams()
    assert (p.m, p.n, p.mu_y, p.rho, p.mu_a, p.mu_s, p.sigma, p.a, p.b) == (150, 40, 0.9, 1.0, 2.0, -10.0, 1.0, 8, 12)


def test_unknown_split():
    with pytest.raises(ValueError, match="train"):
        generate_split(SyntheticParams(m=2, n=8, a=2, b=2), "train")


# ---------------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("changes", "name"),
    [
        ({"n": 10, "a": 2, "b": 11}, "b"),
        ({"n": 10, "a": 11, "b": 2}, "a"),
        ({"n": 10, "a": 5, "b": 6}, "a"),  # a + b > n
        ({"n": 10, "a": 6, "b": 5}, "b"),
        ({"rho": -0.1}, "rho"),
        ({"rho": 1.01}, "rho"),
        ({"mu_y": -0.5}, "mu_y"),
        ({"mu_y": 1.5}, "mu_y"),
        ({"sigma": 0.0}, "sigma"),
        ({"sigma": -1.0}, "sigma"),
        ({"m": 0}, "m"),
        ({"m": -3}, "m"),
        ({"n_val": 0}, "n_val"),
        ({"n_test": 0}, "n_test"),
        ({"n": 40.5}, "n"),
        ({"n": 40.0}, "n"),
        ({"n": "40"}, "n"),
        ({"m": True}, "m"),
        ({"a": 2.5}, "a"),
    ],
)
def test_invalid_parameters_name_the_parameter(changes, name):
    with pytest.raises(ValueError, match=rf"(?<![\w])({re.escape(name)})(?![\w])"):
        SyntheticParams(**changes)


def test_a_plus_b_over_n_message():
    with pytest.raises(ValueError, match=r"a \+ b"):
        SyntheticParams(n=10, a=5, b=6)
    SyntheticParams(n=10, a=4, b=6)  # a + b == n is allowed


def test_replace_validates():
    with pytest.raises(ValueError, match="rho"):
        SyntheticParams().replace(rho=2.0)
    assert SyntheticParams().replace(mu_s=8.0).mu_s == 8.0


# ---------------------------------------------------------------------------------------------------- overrides


def test_parse_synthetic_overrides():
    p = parse_synthetic_overrides(["mu_s=8", "n=32"])
    assert p.mu_s == 8.0 and isinstance(p.mu_s, float)
    assert p.n == 32 and isinstance(p.n, int)
    assert p.to_dict() == {**SyntheticParams().to_dict(), "mu_s": 8.0, "n": 32}


def test_parse_synthetic_overrides_dict_base_and_empty():
    base = SyntheticParams(m=10, n=16, a=4, b=4)
    assert parse_synthetic_overrides(None, base) is base
    assert parse_synthetic_overrides([], base) is base
    p = parse_synthetic_overrides({"rho": "0.7", "m": 20}, base)
    assert (p.rho, p.m, p.n) == (0.7, 20, 16)
    assert parse_synthetic_overrides([" sigma = 2 "]).sigma == 2.0
    assert parse_synthetic_overrides(["mu_s=-8"]).mu_s == -8.0
    assert parse_synthetic_overrides(["m=200.0"]).m == 200


@pytest.mark.parametrize(("items", "key"), [(["foo=1"], "foo"), (["n=32", "mu=3"], "mu"), ({"nn": 3}, "nn")])
def test_parse_synthetic_overrides_unknown_key(items, key):
    with pytest.raises(ValueError, match=re.escape(repr(key))):
        parse_synthetic_overrides(items)


@pytest.mark.parametrize(("item", "key"), [("n=abc", "n"), ("n=3.5", "n"), ("mu_s=x", "mu_s"), ("rho=", "rho"),
                                           ("m=1e", "m")])
def test_parse_synthetic_overrides_bad_value(item, key):
    with pytest.raises(ValueError, match=rf"parameter {re.escape(key)}\b"):
        parse_synthetic_overrides([item])


@pytest.mark.parametrize("item", ["mu_s", "=3", "mu_s:8"])
def test_parse_synthetic_overrides_malformed(item):
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_synthetic_overrides([item])


def _same_samples(a, b):
    return len(a) == len(b) and all(
        x.keys() == y.keys() and all(np.array_equal(x[k], y[k]) if isinstance(x[k], np.ndarray) else x[k] == y[k]
                                     for k in x) for x, y in zip(a, b))


def test_cached_splits_generate_once_and_hand_out_copies(monkeypatch):
    from spatialspec.data import synthetic

    params = SyntheticParams(m=8, n=16, a=4, b=4, n_val=6, n_test=6)
    plain = {split: generate_split(params, split, 3) for split in SPLITS}
    calls = []
    original = synthetic._generate_split
    monkeypatch.setattr(synthetic, "_generate_split", lambda *args: calls.append(args) or original(*args))
    with synthetic.cached_splits():
        first = generate_split(params, "training", 3)
        first[0]["image"][:] = 99.0  # a caller changing its samples in place changes no later run's data
        again = generate_split(SyntheticParams(m=8, n=16, a=4, b=4, n_val=6, n_test=6), "training", np.int64(3))
        with synthetic.cached_splits():  # nested: the same cache
            test = generate_split(params, "test", 3)
            assert _same_samples(generate_split(params, "test", 3), test)
        other_seed = generate_split(params, "training", 4)
    assert _same_samples(again, plain["training"]) and _same_samples(test, plain["test"])
    assert not _same_samples(other_seed, plain["training"])
    assert [(split, seed) for _, split, seed in calls] == [("training", 3), ("test", 3), ("training", 4)]
    calls.clear()
    generate_split(params, "training", 3)  # the cache ended with its block
    assert calls == [(params, "training", 3)]
