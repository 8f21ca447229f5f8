"""Subgroup alignment of embeddings (Table 2) and the UMAP plots (Fig. 3b/c)."""

from __future__ import annotations

import sys
import warnings

import numpy as np
import pytest

from spatialspec.embeddings import (
    SAME_CLASS_PAIRS,
    pair_key,
    plot_embedding_projection,
    subgroup_cosine_similarity,
    umap_projection,
)


def _loop_cosine(x: np.ndarray, y: np.ndarray, s: np.ndarray, a: tuple[int, int], b: tuple[int, int]) -> float:
    """The definition, one pair at a time: mean over i in A, j in B of x_i . x_j / (|x_i| |x_j|)."""
    total, count = 0.0, 0
    for i in range(len(x)):
        if (y[i], s[i]) != a:
            continue
        for j in range(len(x)):
            if (y[j], s[j]) != b:
                continue
            total += float(np.dot(x[i], x[j]) / (np.linalg.norm(x[i]) * np.linalg.norm(x[j])))
            count += 1
    return total / count


def test_pair_keys():
    assert [pair_key(a, b) for a, b in SAME_CLASS_PAIRS] == ["y0s0_y0s1", "y1s0_y1s1"]


def test_identical_subgroups_give_one_and_orthogonal_give_zero():
    # class 0: both subgroups point along e0 (scaled); class 1: s=0 along e1, s=1 along e2 (orthogonal)
    x = np.array([[1, 0, 0], [3, 0, 0], [2, 0, 0], [0, 5, 0], [0, 1, 0], [0, 0, 2]], dtype=float)
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0, 0, 1, 0, 0, 1])
    result = subgroup_cosine_similarity(x, y, s)
    assert result["y0s0_y0s1"] == pytest.approx(1.0)
    assert result["y1s0_y1s1"] == pytest.approx(0.0, abs=1e-12)
    # opposite directions: -1
    x2 = np.array([[1.0, 2.0], [-2.0, -4.0], [1.0, 1.0], [1.0, 1.0]])
    result = subgroup_cosine_similarity(x2, [0, 0, 1, 1], [0, 1, 0, 1])
    assert result["y0s0_y0s1"] == pytest.approx(-1.0)
    assert result["y1s0_y1s1"] == pytest.approx(1.0)


def test_hand_computed_mixture():
    # A = {e0, e1}, B = {e0}: cosines 1 and 0, average 0.5; A' = {(1, 1)}, B' = {e0, (0, 2)}: 1/sqrt(2) each
    x = np.array([[1, 0], [0, 1], [1, 0], [1, 1], [1, 0], [0, 2]], dtype=float)
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0, 0, 1, 0, 1, 1])
    result = subgroup_cosine_similarity(x, y, s)
    assert result["y0s0_y0s1"] == pytest.approx(0.5)
    assert result["y1s0_y1s1"] == pytest.approx(1 / np.sqrt(2))


def _balanced_mean(x: np.ndarray, y: np.ndarray, s: np.ndarray) -> np.ndarray:
    means = [x[(y == a) & (s == b)].mean(axis=0) for a in (0, 1) for b in (0, 1) if ((y == a) & (s == b)).any()]
    return sum(means) / len(means)


@pytest.mark.parametrize("center", [False, "none", "mean", "balanced", True])
def test_matches_an_explicit_double_loop(center):
    rng = np.random.default_rng(3)
    n = 60
    x = rng.normal(size=(n, 7)) + rng.normal(size=7)  # a shared offset, as activations have
    y = rng.integers(0, 2, n)
    s = rng.integers(0, 2, n)
    if center in (False, "none"):
        reference = x
    elif center == "mean":
        reference = x - x.mean(axis=0)
    else:
        reference = x - _balanced_mean(x, y, s)
    result = subgroup_cosine_similarity(x, y, s, center=center)
    for a, b in SAME_CLASS_PAIRS:
        assert result[pair_key(a, b)] == pytest.approx(_loop_cosine(reference, y, s, a, b), abs=1e-12)
    # other pairs, e.g. across classes, and higher-dimensional embeddings (flattened)
    pairs = (((0, 0), (1, 1)), ((1, 1), (1, 1)))
    result = subgroup_cosine_similarity(x.reshape(n, 7, 1), y, s, center=center, pairs=pairs)
    for a, b in pairs:
        assert result[pair_key(a, b)] == pytest.approx(_loop_cosine(reference, y, s, a, b), abs=1e-12)


def test_centring_removes_a_shared_offset():
    rng = np.random.default_rng(0)
    deviations = rng.normal(size=(40, 5))
    y, s = np.repeat([0, 1], 20), np.tile([0, 1], 20)
    raw = subgroup_cosine_similarity(deviations + 100.0, y, s)
    assert min(raw.values()) > 0.99  # the offset dominates every raw cosine
    centred = subgroup_cosine_similarity(deviations + 100.0, y, s, center="mean")
    assert centred == pytest.approx(subgroup_cosine_similarity(deviations - deviations.mean(0), y, s))


def test_balanced_centring_of_an_additive_model_whatever_the_subgroup_sizes():
    # e = c + y u + s v with u = 2 e0, v = 1 e1 (orthogonal), c a large offset; 90 % of the samples have y = 1
    c, u, v = np.array([5.0, 5.0, 5.0]), np.array([2.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0])
    sizes = {(0, 0): 3, (0, 1): 7, (1, 0): 45, (1, 1): 45}
    y = np.concatenate([[a] * k for (a, b), k in sizes.items()])
    s = np.concatenate([[b] * k for (a, b), k in sizes.items()])
    x = c + y[:, None] * u + s[:, None] * v
    expected = (4.0 - 1.0) / (4.0 + 1.0)  # (|u|^2 - |v|^2) / (|u|^2 + |v|^2)
    balanced = subgroup_cosine_similarity(x, y, s, center=True)
    assert balanced == pytest.approx({"y0s0_y0s1": expected, "y1s0_y1s1": expected})
    # the plain mean, c + 0.9 u + 0.52 v, is close to the majority class's: y=1 deviates from it by (0.2, -0.52, 0)
    # (s = 0) and (0.2, 0.48, 0) (s = 1), mostly along v
    plain = subgroup_cosine_similarity(x, y, s, center="mean")
    hand = (0.2 * 0.2 - 0.52 * 0.48) / (np.hypot(0.2, 0.52) * np.hypot(0.2, 0.48))
    assert plain["y1s0_y1s1"] == pytest.approx(hand)
    assert plain["y1s0_y1s1"] < 0 < balanced["y1s0_y1s1"]
    with pytest.raises(ValueError, match="center must be a bool or one of none, mean, balanced"):
        subgroup_cosine_similarity(x, y, s, center="median")


def test_empty_subgroup_is_nan_with_a_warning():
    x = np.eye(4)
    with pytest.warns(RuntimeWarning, match=r"y0s0_y0s1.*\(y=0, s=1\)"):
        result = subgroup_cosine_similarity(x, [0, 0, 1, 1], [0, 0, 0, 1])
    assert np.isnan(result["y0s0_y0s1"])
    assert result["y1s0_y1s1"] == pytest.approx(0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning when every subgroup is present
        subgroup_cosine_similarity(x, [0, 0, 1, 1], [0, 1, 0, 1])


def test_zero_vector_has_cosine_zero_and_bad_inputs_raise():
    x = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    result = subgroup_cosine_similarity(x, [0, 0, 1, 1], [0, 1, 0, 1])
    assert result["y0s0_y0s1"] == 0.0
    with pytest.raises(ValueError, match="y must hold one label per embedding"):
        subgroup_cosine_similarity(x, [0, 1], [0, 1, 0, 1])
    with pytest.raises(ValueError, match="s must hold one label"):
        subgroup_cosine_similarity(x, [0, 0, 1, 1], [0])
    with pytest.raises(ValueError, match="N x C"):
        subgroup_cosine_similarity(np.zeros((0, 3)), [], [])
    with pytest.raises(ValueError, match="NaN"):
        subgroup_cosine_similarity(np.array([[np.nan, 1.0]]), [0], [0])


def test_plot_embedding_projection_writes_a_png(tmp_path):
    rng = np.random.default_rng(0)
    path = plot_embedding_projection(rng.normal(size=(30, 2)), rng.integers(0, 2, 30), rng.integers(0, 2, 30),
                                     tmp_path / "sub" / "umap.png", title="test")
    assert path == tmp_path / "sub" / "umap.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["umap.png"]  # no temporary file left behind
    with pytest.raises(ValueError, match="N x 2"):
        plot_embedding_projection(np.zeros((5, 3)), np.zeros(5), np.zeros(5), tmp_path / "x.png")
    with pytest.raises(ValueError, match="y must hold"):
        plot_embedding_projection(np.zeros((5, 2)), np.zeros(4), np.zeros(5), tmp_path / "x.png")


def test_umap_projection_without_umap_asks_for_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # `import umap` now raises ImportError
    with pytest.raises(ImportError, match=r"pip install 'spatialspec\[umap\]'"):
        umap_projection(np.random.default_rng(0).normal(size=(10, 3)))


def test_umap_projection_input_checks():
    with pytest.raises(ValueError, match="N >= 4"):
        umap_projection(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="NaN"):
        umap_projection(np.full((6, 2), np.nan))


@pytest.mark.slow
def test_umap_projection_separates_blobs_and_is_seeded():
    pytest.importorskip("umap")
    rng = np.random.default_rng(0)
    centres = np.eye(8)[[0, 4]] * 5.0
    labels = np.repeat([0, 1], 40)
    x = centres[labels] + rng.normal(scale=0.3, size=(80, 8)) + 1.0
    points = umap_projection(x, seed=1)
    assert points.shape == (80, 2)
    # each point is nearer to its own blob's 2-D centroid than to the other's
    means = np.stack([points[labels == k].mean(axis=0) for k in (0, 1)])
    nearest = np.argmin(((points[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert (nearest == labels).all()
    np.testing.assert_array_equal(points, umap_projection(x, seed=1))
