"""Specificity transforms (Sec. 3.1): every level on hand-made masks, against exact arrays and brute force."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spatialspec.transforms import (
    DilateMask,
    DilateMaskD,
    DilateMaskd,
    DilateMaskDict,
    MaskToBoundingBox,
    MaskToBoundingBoxD,
    MaskToBoundingBoxd,
    MaskToBoundingBoxDict,
    MaskToPatchGrid,
    MaskToPatchGridD,
    MaskToPatchGridd,
    MaskToPatchGridDict,
    SpecificityLabel,
    SpecificityLabelD,
    SpecificityLabeld,
    SpecificityLabelDict,
    bbox_supervision,
    binary_supervision,
    dilate_supervision,
    patch_supervision,
    specificity_supervision,
)

ALL_LEVELS = ["binary", "patch:1", "patch:2", "patch:3", "dilate:1", "dilate:2", "dilate:2.5", "dilate:4",
              "dilate:8", "bbox", "bbox:all", "seg"]


def grid(rows: list[str]) -> np.ndarray:
    """A 0/1 array from strings such as ``"..#."`` (``#`` or ``1`` is 1)."""
    return np.array([[c in "#1" for c in row] for row in rows], dtype=np.float32)


def brute_dilate(mask: np.ndarray, r: float) -> np.ndarray:
    """The paper's definition, literally: Ytilde_ij = 1 iff some Y_kl = 1 has |i-k| < floor(H/r), |j-l| < floor(W/r)."""
    h, w = mask.shape
    dh, dw = int(np.floor(h / r)), int(np.floor(w / r))
    out = np.zeros((h, w), bool)
    ks, ls = np.nonzero(mask)
    for i in range(h):
        for j in range(w):
            # k, l: the paper's Y_kl
            out[i, j] = any(abs(i - k) < dh and abs(j - l) < dw for k, l in zip(ks, ls))  # noqa: E741
    return out


# ---------------------------------------------------------------------------------------------------- binary


def test_binary_positive_and_negative():
    mask = np.zeros((2, 5, 6), np.float32)
    mask[0, 4, 5] = 1
    out = binary_supervision(mask)
    assert out.dtype == bool and out.shape == (2, 5, 6)
    assert out[0].all()
    assert not out[1].any()


# ---------------------------------------------------------------------------------------------------- patch


def test_patch_divisible_exact():
    mask = grid([
        "........",
        "........",
        "..#.....",
        "........",
        "........",
        "........",
        "........",
        ".......#",
    ])
    expected = grid([
        "####....",
        "####....",
        "####....",
        "####....",
        "....####",
        "....####",
        "....####",
        "....####",
    ]).astype(bool)
    np.testing.assert_array_equal(patch_supervision(mask, 2), expected)
    expected4 = grid([
        "........",
        "........",
        "..##....",
        "..##....",
        "........",
        "........",
        "......##",
        "......##",
    ]).astype(bool)
    np.testing.assert_array_equal(patch_supervision(mask, 4), expected4)
    # K = 1 is the binary level, K = size is the segmentation
    np.testing.assert_array_equal(patch_supervision(mask, 1), np.ones((8, 8), bool))
    np.testing.assert_array_equal(patch_supervision(mask, 8), mask.astype(bool))


def test_patch_non_divisible_10x10_k3():
    # 10 rows into 3 cells: cell of row i is floor(i * 3 / 10) -> rows 0-3, 4-6, 7-9 (sizes 4, 3, 3), same columns
    mask = np.zeros((10, 10), np.float32)
    mask[3, 0] = 1  # last row of cell row 0, cell column 0
    mask[4, 9] = 1  # first row of cell row 1, cell column 2
    expected = grid([
        "####......",
        "####......",
        "####......",
        "####......",
        ".......###",
        ".......###",
        ".......###",
        "..........",
        "..........",
        "..........",
    ]).astype(bool)
    np.testing.assert_array_equal(patch_supervision(mask, 3), expected)


def _cells(size: int, k: int) -> list[np.ndarray]:
    """The rows (or columns) of each of the k cells: row i belongs to cell floor(i * k / size)."""
    index = (np.arange(size) * k) // size
    return [np.flatnonzero(index == c) for c in range(k)]


@pytest.mark.parametrize(("shape", "k"), [((10, 10), 3), ((7, 11), 3), ((9, 5), 4), ((13, 13), 5), ((6, 6), 6),
                                          ((8, 8), 1)])
def test_patch_cells_partition_and_any_rule(shape, k):
    """Random masks: the output is constant on each of K x K contiguous cells (sizes floor or ceil of size/K) and
    a cell is positive iff it holds a Y pixel."""
    rng = np.random.default_rng(sum(shape) + k)
    h, w = shape
    rows, cols = _cells(h, k), _cells(w, k)
    for cells, size in ((rows, h), (cols, w)):
        assert np.array_equal(np.concatenate(cells), np.arange(size))  # a partition into contiguous runs
        assert {len(c) for c in cells} <= {size // k, -(-size // k)}
    for _ in range(5):
        mask = rng.random(shape) < 0.05
        out = patch_supervision(mask, k)
        expected = np.zeros(shape, bool)
        for rr in rows:
            for cc in cols:
                expected[np.ix_(rr, cc)] = mask[np.ix_(rr, cc)].any()
        np.testing.assert_array_equal(out, expected)
        assert (out >= mask).all()  # Y_ij = 1 implies Ytilde_ij = 1


@pytest.mark.parametrize(("shape", "k"), [((10, 10), 11), ((4, 8), 5), ((8, 4), 5)])
def test_patch_grid_larger_than_image_raises(shape, k):
    with pytest.raises(ValueError, match=f"grid={k}"):
        patch_supervision(np.zeros(shape), k)
    with pytest.raises(ValueError):
        SpecificityLabel(f"patch:{k}")(np.zeros((1, *shape)))


@pytest.mark.parametrize("k", [0, -1, 2.0])
def test_patch_bad_grid_raises(k):
    with pytest.raises(ValueError, match="grid"):
        patch_supervision(np.zeros((8, 8)), k)


# ---------------------------------------------------------------------------------------------------- dilate


def test_dilate_exact_small():
    # n = 8, r = 4: floor(8/4) = 2, so |i-k| < 2 and |j-l| < 2: a 3 x 3 box around each pixel
    mask = np.zeros((8, 8), np.float32)
    mask[2, 3] = 1
    mask[7, 0] = 1  # bottom-left corner: clipped by the border
    expected = grid([
        "........",
        "..###...",
        "..###...",
        "..###...",
        "........",
        "........",
        "##......",
        "##......",
    ]).astype(bool)
    np.testing.assert_array_equal(dilate_supervision(mask, 4), expected)
    # r = 2: floor(8/2) = 4, |i-k| < 4: a 7 x 7 box (clipped)
    expected2 = np.zeros((8, 8), bool)
    expected2[0:6, 0:7] = True
    expected2[4:8, 0:4] = True
    np.testing.assert_array_equal(dilate_supervision(mask, 2), expected2)


@pytest.mark.parametrize("shape", [(8, 8), (10, 10), (7, 12), (12, 5), (9, 16)])
@pytest.mark.parametrize("r", [0.5, 1, 1.5, 2, 2.5, 3, 4, 5])
def test_dilate_matches_paper_brute_force(shape, r):
    if r > min(shape):
        pytest.skip("r larger than the image")
    rng = np.random.default_rng(int(r * 10) * 100 + shape[0] * 17 + shape[1])
    for density in (0.0, 0.03, 0.1):
        mask = (rng.random(shape) < density).astype(np.float32)
        np.testing.assert_array_equal(dilate_supervision(mask, r), brute_dilate(mask, r))


def test_dilate_brute_force_single_pixel_every_position():
    h, w = 9, 7
    for r in (1, 2, 3, 7):
        for i in range(h):
            for j in range(w):
                mask = np.zeros((h, w))
                mask[i, j] = 1
                np.testing.assert_array_equal(dilate_supervision(mask, r), brute_dilate(mask, r))


@pytest.mark.parametrize("n", [5, 8, 13])
def test_dilate_1_is_binary_and_dilate_n_is_seg(n):
    rng = np.random.default_rng(n)
    mask = np.zeros((1, n, n), np.float32)
    mask[0, n - 1, 0] = 1
    mask[0][rng.random((n, n)) < 0.05] = 1
    np.testing.assert_array_equal(dilate_supervision(mask, 1), np.ones((1, n, n), bool))
    np.testing.assert_array_equal(dilate_supervision(mask, 1), binary_supervision(mask))
    np.testing.assert_array_equal(dilate_supervision(mask, n), mask.astype(bool))
    np.testing.assert_array_equal(specificity_supervision(mask, f"dilate:{n}"), specificity_supervision(mask, "seg"))
    np.testing.assert_array_equal(specificity_supervision(mask, "dilate:1"),
                                  specificity_supervision(mask, "binary"))


@pytest.mark.parametrize("r", [0, -1.0])
def test_dilate_bad_resolution(r):
    with pytest.raises(ValueError, match="resolution"):
        dilate_supervision(np.zeros((8, 8)), r)


def test_dilate_resolution_larger_than_image():
    with pytest.raises(ValueError, match="resolution=9"):
        dilate_supervision(np.zeros((8, 8)), 9)
    with pytest.raises(ValueError, match="resolution"):
        DilateMask(5)(np.zeros((1, 4, 10)))


# ---------------------------------------------------------------------------------------------------- bbox


def test_bbox_single_component_exact():
    mask = grid([
        "........",
        "..#.....",
        "..##....",
        "....#...",  # touches (2,3) diagonally: same 8-connected component
        "........",
        "........",
    ])
    expected = grid([
        "........",
        "..###...",
        "..###...",
        "..###...",
        "........",
        "........",
    ]).astype(bool)
    np.testing.assert_array_equal(bbox_supervision(mask), expected)


def test_bbox_two_components_two_boxes():
    mask = grid([
        "#.........",
        ".#........",  # component A: a diagonal pair
        "..........",
        "......#...",
        "......###.",  # component B: an L shape
        "..........",
    ])
    expected = grid([
        "##........",
        "##........",
        "..........",
        "......###.",
        "......###.",
        "..........",
    ]).astype(bool)
    np.testing.assert_array_equal(bbox_supervision(mask), expected)
    # one box around everything
    all_box = np.zeros_like(expected)
    all_box[0:5, 0:9] = True
    np.testing.assert_array_equal(bbox_supervision(mask, mode="all"), all_box)


def test_bbox_diagonal_touch_is_one_component_but_not_4_connected():
    mask = grid([
        "#...",
        ".#..",
        "..#.",
        "....",
    ])
    one_box = np.zeros((4, 4), bool)
    one_box[0:3, 0:3] = True
    np.testing.assert_array_equal(bbox_supervision(mask), one_box)
    np.testing.assert_array_equal(bbox_supervision(mask, connectivity=1), mask.astype(bool))


def test_bbox_all_one_box():
    mask = np.zeros((10, 12))
    mask[1, 2] = 1
    mask[7, 9] = 1
    mask[4, 0] = 1
    expected = np.zeros((10, 12), bool)
    expected[1:8, 0:10] = True
    np.testing.assert_array_equal(bbox_supervision(mask, mode="all"), expected)
    np.testing.assert_array_equal(specificity_supervision(mask, "bbox:all"), expected)
    # per component: three 1x1 boxes, i.e. the mask itself
    np.testing.assert_array_equal(specificity_supervision(mask, "bbox"), mask.astype(bool))


def test_bbox_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        bbox_supervision(np.zeros((4, 4)), mode="every")
    with pytest.raises(ValueError, match="connectivity"):
        bbox_supervision(np.zeros((4, 4)), connectivity=3)


# ---------------------------------------------------------------------------------------------------- seg


def test_seg_is_mask():
    mask = np.zeros((1, 6, 7), np.float32)
    mask[0, 1:3, 4:7] = 1
    mask[0, 5, 0] = 0.5
    out = SpecificityLabel("seg")(mask)
    np.testing.assert_array_equal(out, (mask > 0).astype(np.float32))
    assert out is not mask


# ---------------------------------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_empty_mask_gives_zeros(level):
    mask = np.zeros((1, 8, 8), np.float32)
    out = SpecificityLabel(level)(mask)
    assert out.shape == (1, 8, 8)
    assert out.dtype == np.float32
    assert not out.any()


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_abnormality_is_covered(level):
    """Y_ij = 1 implies Ytilde_ij = 1 (Sec. 3.2.1), at every level, including blocks on the image border."""
    rng = np.random.default_rng(7)
    for _ in range(10):
        mask = np.zeros((1, 8, 8), np.float32)
        r, c = rng.integers(0, 6, size=2)
        mask[0, r : r + 3, c : c + 3] = 1
        out = SpecificityLabel(level)(mask)
        assert (out[mask > 0] == 1).all()


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("seg", ["##......", "##......", "........", "........", "........", "........", "........", "........"]),
        ("bbox", ["##......", "##......", "........", "........", "........", "........", "........", "........"]),
        ("patch:2", ["####....", "####....", "####....", "####....", "........", "........", "........",
                     "........"]),
        ("dilate:4", ["###.....", "###.....", "###.....", "........", "........", "........", "........",
                      "........"]),
        ("binary", ["########"] * 8),
    ],
)
def test_abnormality_at_the_corner(level, expected):
    mask = np.zeros((1, 8, 8), np.float32)
    mask[0, 0:2, 0:2] = 1
    out = SpecificityLabel(level)(mask)
    np.testing.assert_array_equal(out[0], grid(expected))


@pytest.mark.parametrize(
    ("level", "expected"),
    [
        ("bbox", ["........", "........", "........", "........", "........", "........", ".......#", ".......#"]),
        ("patch:4", ["........", "........", "........", "........", "........", "........", "......##",
                     "......##"]),
        ("dilate:4", ["........", "........", "........", "........", "........", "......##", "......##",
                      "......##"]),
    ],
)
def test_abnormality_at_the_bottom_right_border(level, expected):
    mask = np.zeros((1, 8, 8), np.float32)
    mask[0, 6:8, 7] = 1
    np.testing.assert_array_equal(SpecificityLabel(level)(mask)[0], grid(expected))


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_batch_equals_per_image(level):
    rng = np.random.default_rng(3)
    batch = np.zeros((4, 1, 9, 10), np.float32)
    batch[0, 0, 1:3, 2:5] = 1
    batch[0, 0, 7, 8] = 1
    batch[1] = rng.random((1, 9, 10)) < 0.08
    # batch[2] stays empty
    batch[3, 0, 8, 9] = 1
    transform = SpecificityLabel(level)
    out = transform(batch)
    assert out.shape == batch.shape
    for b in range(batch.shape[0]):
        np.testing.assert_array_equal(out[b], transform(batch[b]))
        np.testing.assert_array_equal(out[b, 0], transform(batch[b, 0]))
    # the batch's images are not mixed: the empty one stays empty
    assert not out[2].any()


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_torch_in_torch_out(level):
    mask = np.zeros((1, 8, 8), np.float32)
    mask[0, 2:4, 5:7] = 1
    expected = SpecificityLabel(level)(mask)
    for dtype in (torch.float32, torch.uint8, torch.float64):
        out = SpecificityLabel(level)(torch.as_tensor(mask).to(dtype))
        assert isinstance(out, torch.Tensor)
        assert out.dtype == torch.float32
        np.testing.assert_array_equal(out.numpy(), expected)


@pytest.mark.parametrize("level", ALL_LEVELS)
def test_numpy_in_numpy_out(level):
    mask = np.zeros((1, 8, 8), np.uint8)
    mask[0, 2:4, 5:7] = 1
    out = SpecificityLabel(level)(mask)
    assert isinstance(out, np.ndarray) and not isinstance(out, torch.Tensor)
    assert out.dtype == np.float32
    assert set(np.unique(out)) <= {0.0, 1.0}
    np.testing.assert_array_equal(out, specificity_supervision(mask, level).astype(np.float32))


def test_dtype_argument():
    mask = np.zeros((1, 4, 4), np.float32)
    mask[0, 1, 1] = 1
    out = SpecificityLabel("dilate:2", dtype=np.uint8)(mask)
    assert out.dtype == np.uint8
    out_t = SpecificityLabel("bbox", dtype=torch.int64)(torch.as_tensor(mask))
    assert out_t.dtype == torch.int64
    np.testing.assert_array_equal(out_t.numpy(), mask.astype(np.int64))


def test_array_transforms_equal_functions():
    rng = np.random.default_rng(11)
    mask = (rng.random((1, 12, 12)) < 0.06).astype(np.float32)
    np.testing.assert_array_equal(MaskToPatchGrid(3)(mask), patch_supervision(mask, 3))
    np.testing.assert_array_equal(DilateMask(3)(mask), dilate_supervision(mask, 3))
    np.testing.assert_array_equal(MaskToBoundingBox()(mask), bbox_supervision(mask))
    np.testing.assert_array_equal(MaskToBoundingBox("all")(mask), bbox_supervision(mask, "all"))
    np.testing.assert_array_equal(MaskToBoundingBox(connectivity=1)(mask), bbox_supervision(mask, connectivity=1))


def test_mask_needs_two_dims():
    with pytest.raises(ValueError, match="2"):
        SpecificityLabel("seg")(np.zeros(5))


# ---------------------------------------------------------------------------------------------------- dict forms


def _sample():
    mask = np.zeros((1, 8, 8), np.float32)
    mask[0, 1, 1] = 1
    mask[0, 5:7, 5] = 1
    return {"mask": mask, "image": np.arange(64, dtype=np.float32).reshape(1, 8, 8)}


def test_specificity_labeld_output_keys():
    data = _sample()
    out = SpecificityLabeld(keys="mask", level="bbox:all", output_keys="label")(data)
    expected = np.zeros((1, 8, 8), np.float32)
    expected[0, 1:7, 1:6] = 1
    np.testing.assert_array_equal(out["label"], expected)
    np.testing.assert_array_equal(out["mask"], data["mask"])  # input kept
    assert out["image"] is data["image"]
    assert "label" not in data  # the input dict is not modified


def test_specificity_labeld_overwrites_by_default():
    data = _sample()
    out = SpecificityLabeld(keys="mask", level="binary")(data)
    np.testing.assert_array_equal(out["mask"], np.ones((1, 8, 8), np.float32))
    assert set(out) == {"mask", "image"}


def test_dict_output_keys_must_match_keys():
    with pytest.raises(ValueError, match="output_keys"):
        SpecificityLabeld(keys=["mask", "image"], level="seg", output_keys="label")


def test_dict_missing_keys():
    with pytest.raises(KeyError):
        SpecificityLabeld(keys="mask", level="seg")({"image": np.zeros((1, 4, 4))})
    out = SpecificityLabeld(keys="mask", level="seg", allow_missing_keys=True)({"image": np.zeros((1, 4, 4))})
    assert set(out) == {"image"}


@pytest.mark.parametrize("cls", [MaskToPatchGridd, MaskToPatchGridD, MaskToPatchGridDict])
def test_mask_to_patch_gridd(cls):
    data = _sample()
    out = cls(keys="mask", grid=4, output_keys="label")(data)
    np.testing.assert_array_equal(out["label"], patch_supervision(data["mask"], 4).astype(np.float32))
    assert out["label"][0, 0:2, 0:2].all() and out["label"][0, 4:8, 4:6].all()
    assert out["label"].sum() == 4 + 8


@pytest.mark.parametrize("cls", [DilateMaskd, DilateMaskD, DilateMaskDict])
def test_dilate_maskd(cls):
    data = _sample()
    out = cls(keys="mask", resolution=4, output_keys="label")(data)
    np.testing.assert_array_equal(out["label"][0], brute_dilate(data["mask"][0], 4).astype(np.float32))
    out_t = cls(keys="mask", resolution=8)({"mask": torch.as_tensor(data["mask"])})
    assert isinstance(out_t["mask"], torch.Tensor)
    np.testing.assert_array_equal(out_t["mask"].numpy(), data["mask"])


@pytest.mark.parametrize("cls", [MaskToBoundingBoxd, MaskToBoundingBoxD, MaskToBoundingBoxDict])
def test_mask_to_bounding_boxd(cls):
    data = _sample()
    out = cls(keys="mask", output_keys="box")(data)
    np.testing.assert_array_equal(out["box"], data["mask"])  # a pixel and a vertical bar are already boxes
    out_all = cls(keys="mask", mode="all", output_keys="box")(data)
    expected = np.zeros((1, 8, 8), np.float32)
    expected[0, 1:7, 1:6] = 1
    np.testing.assert_array_equal(out_all["box"], expected)


@pytest.mark.parametrize("cls", [SpecificityLabeld, SpecificityLabelD, SpecificityLabelDict])
@pytest.mark.parametrize("level", ["patch:2", "dilate:2", "seg"])
def test_specificity_label_aliases(cls, level):
    data = _sample()
    data["mask2"] = np.flip(data["mask"], axis=-1).copy()
    out = cls(keys=["mask", "mask2"], level=level, output_keys=["l1", "l2"])(data)
    np.testing.assert_array_equal(out["l1"], SpecificityLabel(level)(data["mask"]))
    np.testing.assert_array_equal(out["l2"], SpecificityLabel(level)(data["mask2"]))
