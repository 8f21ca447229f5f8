"""Empirical measures (Definitions 1 and 3) against direct computations: the literal Ytilde definition, numpy's
variance of the selected pixels, hand-computed MI; the paper's synthetic setting (Sec. 3.3.2) against Appendix B."""

from __future__ import annotations

import json
import math

import nibabel as nib
import numpy as np
import pytest

from spatialspec.data import SyntheticParams, write_synthetic_datalist
from spatialspec.theory import (
    MeasureArrays,
    closed_form_measures,
    datalist_arrays,
    dilate_mask,
    empirical_measures,
    joint_counts,
    level_supervision,
    mi_closed_form,
    mi_from_counts,
    mi_measure,
    synthetic_arrays,
    theory_measures,
    variance_closed_form,
    variance_measure,
)
from spatialspec.transforms import specificity_supervision


def brute_dilate(mask: np.ndarray, r: float, rounding: str) -> np.ndarray:
    """Sec. 3.1 literally: Ytilde_ij = 1 iff some Y_kl = 1 has |i-k| < h_H and |j-l| < h_W, h rounded as asked."""
    rnd = math.floor if rounding == "floor" else math.ceil
    hh, hw = rnd(mask.shape[0] / r), rnd(mask.shape[1] / r)
    ks, ls = np.nonzero(mask)
    ii, jj = np.indices(mask.shape)
    out = np.zeros(mask.shape, bool)
    for k, l in zip(ks, ls):  # noqa: E741 (k, l: the paper's Y_kl)
        out |= (np.abs(ii - k) < hh) & (np.abs(jj - l) < hw)
    return out


# ---------------------------------------------------------------------------------------------------- Ytilde


@pytest.mark.parametrize("rounding", ["floor", "ceil"])
def test_dilate_mask_is_the_literal_definition(rounding):
    rng = np.random.default_rng(0)
    for shape in [(12, 12), (9, 14), (17, 5)]:
        masks = rng.random((3, *shape)) < 0.04
        for r in (1, 1.5, 2, 3, 4, 4.5, min(shape)):
            out = dilate_mask(masks, r, rounding)
            assert out.dtype == bool and out.shape == masks.shape
            for mask, got in zip(masks, out):
                np.testing.assert_array_equal(got, brute_dilate(mask, r, rounding), err_msg=f"{shape} r={r}")


def test_floor_is_the_transforms_label_and_ceil_differs_only_when_r_does_not_divide_n():
    rng = np.random.default_rng(1)
    masks = rng.random((4, 1, 40, 40)) < 0.01
    for r in (1, 2, 3, 4, 5, 6, 7, 8, 10, 13, 20, 40):
        floor = level_supervision(masks, f"dilate:{r}")
        np.testing.assert_array_equal(floor, specificity_supervision(masks, f"dilate:{r}"))
        ceil = level_supervision(masks, f"dilate:{r}", "ceil")
        assert np.array_equal(floor, ceil) == (40 % r == 0), r
        assert np.all(ceil >= floor)  # ceil is the wider window
    for level in ("binary", "patch:4", "bbox", "bbox:all", "seg"):
        for rounding in ("floor", "ceil"):
            np.testing.assert_array_equal(level_supervision(masks, level, rounding),
                                          specificity_supervision(masks, level))


def test_dilate_mask_errors():
    with pytest.raises(ValueError, match="rounding"):
        dilate_mask(np.zeros((4, 4)), 2, "nearest")
    with pytest.raises(ValueError, match="resolution"):
        dilate_mask(np.zeros((4, 4)), 5)  # floor(4/5) = 0: an empty window


# ---------------------------------------------------------------------------------------------------- measures


def test_variance_measure_is_numpy_variance_of_positive_pixels():
    rng = np.random.default_rng(2)
    images = rng.normal(3, 2, (5, 2, 6, 7))
    sup = rng.random((5, 6, 7)) < 0.3
    picked = np.concatenate([images[i, c][sup[i]] for i in range(5) for c in range(2)])
    assert variance_measure(images, sup) == pytest.approx(np.var(picked), rel=1e-12)
    assert math.isnan(variance_measure(images, np.zeros((5, 6, 7), bool)))
    with pytest.raises(ValueError, match="do not match"):
        variance_measure(images, sup[:, :5])


def test_mi_from_counts_hand_values():
    # S = Y on every pixel: I = H(Y) = -(1/4 log 1/4 + 3/4 log 3/4)
    assert mi_from_counts([[30, 0], [0, 10]]) == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))
    assert mi_from_counts([[30, 0], [0, 10]], base=2) == pytest.approx(
        -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75)))
    assert mi_from_counts([[6, 2], [9, 3]]) == pytest.approx(0.0, abs=1e-15)  # independent
    assert math.isnan(mi_from_counts([[0, 0], [0, 0]]))


def test_joint_counts_and_mi_measure_by_hand():
    y = np.array([[1, 1, 0, 0], [0, 0, 0, 0]])
    s = np.array([[0, 0, 1, 0], [1, 1, 0, 0]])
    sup = np.array([[1, 1, 1, 1], [1, 1, 0, 0]])
    np.testing.assert_array_equal(joint_counts(s, y, sup), [[1, 2], [3, 0]])  # [s, y]
    # P(y=1) = 2/6, P(S=1 | y=0) = 3/4: eq. (13) with gamma = 1/3, w = 3/4 is the same table
    assert mi_measure(s, y, sup) == pytest.approx(mi_closed_form(1 / 3, 3 / 4), abs=1e-12)


def test_empirical_measures_pool_images_of_different_shapes():
    rng = np.random.default_rng(3)
    shapes = [(8, 8), (6, 10), (8, 8), (6, 10), (5, 5)]
    images = [rng.normal(size=(1, *shape)) for shape in shapes]
    masks = [rng.random(shape) < 0.1 for shape in shapes]
    spurious = [(rng.random(shape) < 0.2) & ~m for shape, m in zip(shapes, masks)]
    levels = ["binary", "dilate:2", "bbox", "seg"]
    records = empirical_measures(MeasureArrays(images, masks, spurious), levels, "ceil")
    assert [rec["level"] for rec in records] == levels
    for level, rec in zip(levels, records):
        sups = [level_supervision(m[None], level, "ceil")[0] for m in masks]
        values = np.concatenate([img[0][sup] for img, sup in zip(images, sups)])
        counts = sum(joint_counts(s, m, sup) for s, m, sup in zip(spurious, masks, sups))
        assert rec["var_empirical"] == pytest.approx(np.var(values), rel=1e-12)
        assert rec["mi_empirical"] == pytest.approx(mi_from_counts(counts), abs=1e-15)
        assert rec["pixels"] == sum(int(sup.sum()) for sup in sups)
    no_s = empirical_measures(MeasureArrays(images, masks, None), ["seg"])
    assert no_s[0]["mi_empirical"] is None
    with pytest.raises(ValueError, match="mask shape"):
        empirical_measures(MeasureArrays(images, [m.T for m in masks], None), ["seg"])


# ---------------------------------------------------------------------------------------------------- paper setting


@pytest.fixture(scope="module")
def paper_arrays() -> MeasureArrays:
    return synthetic_arrays(SyntheticParams(), samples=1000, seed=0)


def test_paper_setting_endpoints_match_appendix(paper_arrays):
    params = SyntheticParams()
    records = theory_measures([1, 2, 4, 8, 20, 40], params, rounding="floor", arrays=paper_arrays)
    first, last = records[0], records[-1]
    # r = 1: the measure over whole abnormal images, Var[X | y = 1] ~ 9.5; r = n: Var[X | Y = 1] = sigma^2 = 1
    assert first["var_empirical"] == pytest.approx(first["var_closed"], rel=0.05)
    assert 9.0 < first["var_empirical"] < 10.0
    assert last["var_empirical"] == pytest.approx(last["var_closed"], rel=0.05)
    assert 0.95 < last["var_empirical"] < 1.05
    assert last["var_empirical"] < records[2]["var_empirical"] < first["var_empirical"]
    # r = 1 counts exactly a^2 abnormal and b^2 spurious pixels of n^2 per image (rho = 1): the MI equals eq. (13)
    assert first["mi_empirical"] == pytest.approx(first["mi_closed"], rel=1e-9)
    assert last["mi_empirical"] == last["mi_closed"] == 0.0
    assert all(rec["condition_8"] is True for rec in records)


def test_eq13_holds_for_the_pooled_gamma_and_w(paper_arrays):
    # with gamma and w measured on the pooled pixels, eq. (13) is the plug-in MI and eq. (7) the variance up to noise
    images, masks, spurious = paper_arrays
    for r in (2, 5, 10):
        sup = level_supervision(masks, f"dilate:{r}")
        y, s = masks[sup], spurious[sup]
        g, w = y.mean(), s[~y].mean()
        rec = empirical_measures(paper_arrays, [f"dilate:{r}"])[0]
        assert rec["mi_empirical"] == pytest.approx(mi_closed_form(g, w), rel=1e-9)
        assert rec["var_empirical"] == pytest.approx(variance_closed_form(g, w, 2.0, -10.0, 1.0), rel=0.02)


def test_ceil_rounding_uses_the_ceil_label(paper_arrays):
    floor, ceil = (theory_measures([3, 4], rounding=rnd, arrays=paper_arrays) for rnd in ("floor", "ceil"))
    assert floor[1] == ceil[1]  # 40 / 4 is an integer
    assert floor[0]["gamma"] != ceil[0]["gamma"] and floor[0]["var_empirical"] != ceil[0]["var_empirical"]
    sup = dilate_mask(paper_arrays.masks, 3, "ceil")
    assert ceil[0]["var_empirical"] == pytest.approx(variance_measure(paper_arrays.images, sup), rel=1e-12)
    assert ceil[0]["gamma"] == closed_form_measures(SyntheticParams(), 3, "ceil")["gamma"]


def test_synthetic_arrays_follow_generate_split():
    params = SyntheticParams(n=16, a=4, b=5)
    arrays = synthetic_arrays(params, samples=7, seed=3)
    assert arrays.images.shape == (7, 1, 16, 16) and arrays.masks.shape == arrays.spurious.shape == (7, 16, 16)
    assert arrays.masks.dtype == bool
    assert not np.any(arrays.masks & arrays.spurious)
    with pytest.raises(ValueError, match="samples"):
        synthetic_arrays(params, samples=0)


# ---------------------------------------------------------------------------------------------------- datalists


def test_datalist_measures_equal_the_generated_arrays(tmp_path):
    params = SyntheticParams(m=12, n=16, a=4, b=5, n_val=2, n_test=2, mu_y=0.7)
    path = write_synthetic_datalist(tmp_path / "data", params, seed=4)
    levels = ["binary", "dilate:4", "bbox", "seg"]
    from_files = empirical_measures(datalist_arrays(path), levels)
    generated = empirical_measures(synthetic_arrays(params, seed=4), levels)
    for a, b in zip(from_files, generated):
        assert a["level"] == b["level"] and a["pixels"] == b["pixels"]
        assert a["var_empirical"] == pytest.approx(b["var_empirical"], rel=1e-6)
        assert a["mi_empirical"] == pytest.approx(b["mi_empirical"], rel=1e-9, abs=1e-15)


def test_datalist_without_spurious_masks_and_missing_files(tmp_path):
    image = np.arange(36, dtype=np.float32).reshape(6, 6)
    mask = np.zeros((6, 6), np.float32)
    mask[1:3, 2:5] = 1
    nib.save(nib.Nifti1Image(image, np.eye(4)), str(tmp_path / "img.nii.gz"))
    nib.save(nib.Nifti1Image(mask, np.eye(4)), str(tmp_path / "mask.nii.gz"))
    entry = {"image": "img.nii.gz", "label": "mask.nii.gz", "y": 1, "s": 0}
    (tmp_path / "list.json").write_text(json.dumps({"training": [entry]}))
    arrays = datalist_arrays(tmp_path / "list.json")
    assert arrays.spurious is None
    rec = empirical_measures(arrays, ["seg", "binary"])
    assert rec[0]["var_empirical"] == pytest.approx(np.var(image[1:3, 2:5]))
    assert rec[1]["var_empirical"] == pytest.approx(np.var(image))
    assert rec[0]["mi_empirical"] is None
    entry["label"] = "missing.nii.gz"
    (tmp_path / "list.json").write_text(json.dumps({"training": [entry]}))
    with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
        datalist_arrays(tmp_path / "list.json")
