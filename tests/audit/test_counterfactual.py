"""Counterfactual spurious audit (spatialspec.audit.counterfactual): insertion, removal and the audit's figures on
hand-made arrays whose counterfactuals are known exactly."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from spatialspec.audit import ShiftStats, counterfactual_audit, insert_spurious, remove_spurious, spatial_mask

N = 8
S_BOX = (slice(0, 3), slice(0, 3))  # where every image with the spurious feature has it
Y_BOX = (slice(5, 7), slice(5, 7))  # where every abnormal image has its abnormality
S_VALUE = -10.0


def _box(*box: slice) -> np.ndarray:
    mask = np.zeros((1, N, N), np.float32)
    mask[(0, *box)] = 1.0
    return mask


def _entries(has_s: list[int], y: list[int], seed: int = 0) -> list[dict]:
    """Images with a constant background c_i, S = -10 in S_BOX, Y = v_i > 0 in Y_BOX."""
    rng = np.random.default_rng(seed)
    entries = []
    for i, (s, label) in enumerate(zip(has_s, y)):
        image = np.full((1, N, N), rng.uniform(-1, 1), np.float32)
        if label:
            image[(0, *Y_BOX)] = rng.uniform(0.5, 3)
        if s:
            image[(0, *S_BOX)] = S_VALUE
        entries.append({"id": f"im{i}", "image": image, "spurious_mask": _box(*S_BOX) * s,
                        "label": _box(*Y_BOX) * label, "y": label})
    return entries


def _mean_of(box):
    return lambda images: images[(slice(None), 0, *box)].reshape(len(images), -1).mean(axis=1)


def test_spatial_mask_accepts_channels_and_png_masks():
    mask = np.zeros((2, 4, 5))
    mask[1, 2, 3] = 255
    expected = np.zeros((4, 5), bool)
    expected[2, 3] = True
    np.testing.assert_array_equal(spatial_mask(mask, (1, 4, 5)), expected)
    with pytest.raises(ValueError, match="spurious_mask has shape"):
        spatial_mask(np.zeros((4, 4)), (1, 4, 5), "spurious_mask")


def test_insert_at_the_donor_location():
    image = np.zeros((1, 6, 6), np.float32)
    donor = np.arange(36, dtype=np.float32).reshape(1, 6, 6)
    mask = np.zeros((1, 6, 6))
    mask[0, 1:3, 2:5] = 1
    out, inserted = insert_spurious(image, donor, mask)
    region = mask[0] > 0
    np.testing.assert_array_equal(inserted, region)
    np.testing.assert_array_equal(out[0][region], donor[0][region])
    np.testing.assert_array_equal(out[0][~region], 0.0)
    assert image.sum() == 0  # the input is not modified


def test_insert_moves_off_the_abnormality_to_the_only_free_place():
    donor = np.arange(36, dtype=np.float32).reshape(1, 6, 6)
    mask = np.zeros((1, 6, 6))
    mask[0, 0:3, 0:3] = 1
    avoid = np.ones((6, 6))
    avoid[3:, 3:] = 0  # the only 3 x 3 place off the abnormality
    out, inserted = insert_spurious(np.zeros((1, 6, 6), np.float32), donor, mask, np.random.default_rng(0), avoid)
    expected = np.zeros((6, 6), bool)
    expected[3:, 3:] = True
    np.testing.assert_array_equal(inserted, expected)
    # the donor's S pixels, in their arrangement, at the new place
    np.testing.assert_array_equal(out[0, 3:, 3:], donor[0, 0:3, 0:3])
    assert out[0][~expected].sum() == 0


def test_random_placement_reaches_every_valid_position_and_is_seeded():
    donor = np.full((1, 7, 7), 5.0, np.float32)
    mask = np.zeros((1, 7, 7))
    mask[0, 1, 1:3] = 1  # a 1 x 2 region
    mask[0, 2, 1] = 1  # an L shape: the bounding box is 2 x 2
    avoid = np.zeros((7, 7), bool)
    avoid[2:5, 2:5] = True
    shape = mask[0, 1:3, 1:3] > 0
    # brute force: every translation of the L inside the frame that touches no avoided pixel
    valid = {(r, c) for r, c in itertools.product(range(6), range(6))
             if not (avoid[r : r + 2, c : c + 2] & shape).any()}
    reached = set()
    for seed in range(400):
        _, ins = insert_spurious(np.zeros((1, 7, 7)), donor, mask, np.random.default_rng(seed), avoid, "random")
        assert ins.sum() == 3 and not (ins & avoid).any()
        rows, cols = np.nonzero(ins)
        reached.add((rows.min(), cols.min()))
    assert reached == valid
    a = insert_spurious(np.zeros((1, 7, 7)), donor, mask, np.random.default_rng(7), avoid, "random")[1]
    b = insert_spurious(np.zeros((1, 7, 7)), donor, mask, np.random.default_rng(7), avoid, "random")[1]
    np.testing.assert_array_equal(a, b)


def test_insert_errors():
    image, mask = np.zeros((1, 4, 4)), np.ones((1, 4, 4))
    with pytest.raises(ValueError, match="donor_mask is empty"):
        insert_spurious(image, image, np.zeros((1, 4, 4)))
    with pytest.raises(ValueError, match="donor_image shape"):
        insert_spurious(image, np.zeros((1, 5, 5)), mask)
    with pytest.raises(ValueError, match="placement"):
        insert_spurious(image, image, mask, placement="elsewhere")
    with pytest.raises(ValueError, match="avoids avoid_mask"):
        insert_spurious(image, image, mask, np.random.default_rng(0), avoid_mask=np.eye(4))


def test_remove_with_constant_background_leaves_nothing_of_s():
    image = np.zeros((1, 8, 8), np.float32)
    image[0, :3, :3] = S_VALUE
    out = remove_spurious(image, _box(*S_BOX), np.random.default_rng(0))
    np.testing.assert_array_equal(out, np.zeros_like(image))
    assert image[0, 0, 0] == S_VALUE  # the input is not modified


def test_remove_samples_only_the_background_and_keeps_channels_together():
    rng = np.random.default_rng(1)
    plane = rng.normal(size=(N, N)).astype(np.float32)
    image = np.stack([plane, 2 * plane + 1])
    image[:, 0:3, 0:3] = S_VALUE
    image[:, 5:7, 5:7] = 100.0  # the abnormality: never a source
    outside = np.ones((N, N), bool)
    outside[5:7, 5:7] = False
    out = remove_spurious(image, _box(*S_BOX), np.random.default_rng(3), background_mask=outside)
    filled = out[:, 0:3, 0:3].reshape(2, -1)
    background = image[0][outside & ~(_box(*S_BOX)[0] > 0)]
    assert np.isin(filled[0], background).all()
    np.testing.assert_allclose(filled[1], 2 * filled[0] + 1, rtol=1e-6)
    # everything outside S is untouched
    keep = np.ones((N, N), bool)
    keep[0:3, 0:3] = False
    np.testing.assert_array_equal(out[:, keep], image[:, keep])


def test_remove_is_seeded_and_handles_empty_masks():
    image = np.random.default_rng(0).normal(size=(1, N, N))
    a = remove_spurious(image, _box(*S_BOX), np.random.default_rng(5))
    b = remove_spurious(image, _box(*S_BOX), np.random.default_rng(5))
    c = remove_spurious(image, _box(*S_BOX), np.random.default_rng(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    np.testing.assert_array_equal(remove_spurious(image, np.zeros((1, N, N))), image)
    with pytest.raises(ValueError, match="no background pixel"):
        remove_spurious(image, np.ones((1, N, N)))


HAS_S = [1, 0, 1, 0, 1, 0, 0, 1, 1, 0]
Y = [1, 1, 0, 0, 1, 0, 1, 0, 1, 1]


def test_audit_of_a_model_that_reads_s_and_one_that_ignores_it():
    entries = _entries(HAS_S, Y)
    reads_s = counterfactual_audit(_mean_of(S_BOX), entries, seed=0, batch_size=3)
    # the S box is S_VALUE with S and the constant background c_i without: insertion moves the score by
    # S_VALUE - c_i, removal by c_i - S_VALUE
    c = np.array([e["image"][0, 7, 0] for e in entries])
    has_s = np.array(HAS_S, bool)
    np.testing.assert_allclose(reads_s.delta, np.where(has_s, c - S_VALUE, S_VALUE - c), rtol=1e-6)
    assert reads_s.insertion.n == 5 and reads_s.removal.n == 5
    assert reads_s.insertion.mean == pytest.approx(np.mean(S_VALUE - c[~has_s]))
    assert reads_s.removal.median == pytest.approx(np.median(c[has_s] - S_VALUE))
    assert reads_s.mean_abs_shift == pytest.approx(np.mean(np.abs(reads_s.delta))) and reads_s.mean_abs_shift > 8
    ignores_s = counterfactual_audit(_mean_of(Y_BOX), entries, seed=0)
    np.testing.assert_array_equal(ignores_s.delta, 0.0)
    assert ignores_s.mean_abs_shift == 0.0 and ignores_s.insertion.std == 0.0 and ignores_s.removal.mean == 0.0
    np.testing.assert_array_equal(reads_s.has_spurious, has_s)
    np.testing.assert_array_equal(reads_s.donor >= 0, ~has_s)
    assert all(has_s[reads_s.donor[~has_s]])


def test_audit_aurocs_match_sklearn_on_hand_built_counterfactuals():
    entries = _entries(HAS_S, Y, seed=4)
    score = lambda images: images.reshape(len(images), -1).mean(axis=1)  # noqa: E731
    result = counterfactual_audit(score, entries, seed=2)
    images = np.stack([e["image"] for e in entries])
    removed, inserted = images.copy(), images.copy()
    background = images[:, 0, 7, 0]
    has_s = np.array(HAS_S, bool)
    removed[has_s, 0, 0:3, 0:3] = background[has_s, None, None]
    inserted[~has_s, 0, 0:3, 0:3] = S_VALUE
    assert result.auroc_original == pytest.approx(roc_auc_score(Y, score(images)))
    assert result.auroc_removed == pytest.approx(roc_auc_score(Y, score(removed)))
    assert result.auroc_inserted == pytest.approx(roc_auc_score(Y, score(inserted)))
    assert result.auroc_removed != pytest.approx(result.auroc_original)


def test_audit_reads_masks_not_subgroup_labels_and_is_batch_independent():
    entries = _entries(HAS_S, Y, seed=1)
    lying = [{**e, "s": 1 - s} for e, s in zip(entries, HAS_S)]
    score = lambda images: images.reshape(len(images), -1).std(axis=1)  # noqa: E731
    a = counterfactual_audit(score, entries, seed=3, batch_size=64)
    b = counterfactual_audit(score, lying, seed=3, batch_size=1)
    np.testing.assert_allclose(a.score_counterfactual, b.score_counterfactual, rtol=1e-6)
    assert a.mean_abs_shift == pytest.approx(b.mean_abs_shift) and a.auroc_removed == pytest.approx(b.auroc_removed)
    assert a.summary()["n_with_spurious"] == sum(HAS_S)
    records = a.to_dict()["images"]
    assert [r["counterfactual"] for r in records] == ["removal" if s else "insertion" for s in HAS_S]
    assert records[1]["donor"] in {f"im{i}" for i, s in enumerate(HAS_S) if s}


def test_shift_stats_against_numpy():
    d = np.array([0.3, -0.1, 0.5, 0.0, 2.0])
    stats = ShiftStats.of(d)
    assert stats.mean == pytest.approx(0.54) and stats.median == pytest.approx(0.3)
    assert stats.std == pytest.approx(np.std(d)) and stats.mean_abs == pytest.approx(0.58)
    assert stats.quantiles["q25"] == pytest.approx(0.0) and stats.quantiles["q95"] == pytest.approx(1.7)
    assert np.isnan(ShiftStats.of(np.array([])).mean)


def test_audit_errors():
    score = _mean_of(S_BOX)
    with pytest.raises(ValueError, match="no entry has a spurious feature"):
        counterfactual_audit(score, _entries([0, 0], [0, 1]))
    with pytest.raises(ValueError, match="every entry has a spurious feature"):
        counterfactual_audit(score, _entries([1, 1], [0, 1]))
    entries = _entries([1, 0], [0, 1])
    del entries[1]["spurious_mask"]
    with pytest.raises(ValueError, match="entry 1 .* the audit needs spurious masks"):
        counterfactual_audit(score, entries)
    entries = _entries([1, 0], [0, 1])
    entries[1]["image"] = np.zeros((1, N + 1, N + 1))
    with pytest.raises(ValueError, match="image of entry 1 .* one size"):
        counterfactual_audit(score, entries)
    with pytest.raises(ValueError, match="returned 1 scores for a batch of 2"):
        counterfactual_audit(lambda images: [0.0], _entries([1, 0], [0, 1]))
    with pytest.raises(ValueError, match="batch_size"):
        counterfactual_audit(score, _entries([1, 0], [0, 1]), batch_size=0)
