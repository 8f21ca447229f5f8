"""SIIM-ACR reader (spatialspec.data.siim): run-length codec, CSVs, splits, DICOM reading, resizing, the datalist."""

from __future__ import annotations

import json
import pickle
import re
import warnings
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import generate_uid

from spatialspec.data import load_split
from spatialspec.data.siim import (
    PAPER_SIIM_SIZES,
    UNKNOWN_TUBE,
    find_dicoms,
    read_dicom,
    read_rle_csv,
    read_tubes_csv,
    resize_image,
    resize_mask,
    rle_decode,
    siim_split,
    tubes_pickle_to_csv,
    write_siim_datalist,
)
from spatialspec.transforms import LoadImageOrArrayd
from tests.fixtures_real import SIDE, make_siim, write_dicom, write_tubes


# ----------------------------------------------------------------------------------------------- reference code
@pytest.fixture(scope="module")
def siim(tmp_path_factory):
    root = tmp_path_factory.mktemp("siim")
    truth = make_siim(root)
    ids = list(truth["y"])
    labelled = ids[:8]  # four positive, four negative
    tubes = write_tubes(root / "tubes.csv", labelled, [1, 0, 0, 1, 1, 1, 0, 0])
    return root, truth, tubes, labelled


# ----------------------------------------------------------------------------------------------- run lengths
def test_read_rle_csv_leading_spaces_and_instances(siim):
    root, truth, _, _ = siim
    rles = read_rle_csv(root / "train-rle.csv")
    assert list(rles) == list(truth["y"])
    for image_id, values in rles.items():
        assert all(v == v.strip() for v in values)
        union = np.zeros((SIDE, SIDE), bool)
        for v in values:
            union |= rle_decode(v, SIDE, SIDE)
        np.testing.assert_array_equal(union, truth["mask"][image_id])
    multi = [i for i, v in rles.items() if len(v) > 1]
    assert multi, "the fixture must hold multi-instance images"


def test_read_rle_csv_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("ImageId,Pixels\n1.2,-1\n")
    with pytest.raises(ValueError, match=r"bad\.csv.*missing column.*EncodedPixels"):
        read_rle_csv(bad)
    bad.write_text("ImageId, EncodedPixels\n1.2, \n")
    with pytest.raises(ValueError, match=r"line 2: ImageId 1\.2 has an empty EncodedPixels"):
        read_rle_csv(bad)
    bad.write_text("ImageId, EncodedPixels\n1.2, -1, 3\n")
    with pytest.raises(ValueError, match="line 2: 3 fields"):
        read_rle_csv(bad)
    bad.write_text("")
    with pytest.raises(ValueError, match="empty"):
        read_rle_csv(bad)
    with pytest.raises(FileNotFoundError, match="nothere.csv"):
        read_rle_csv(tmp_path / "nothere.csv")


def test_read_tubes_csv(tmp_path):
    path = tmp_path / "tubes.csv"
    path.write_text("ImageId, tube\n a,1\nb, 0\nc,True\nd,false\n")
    assert read_tubes_csv(path) == {"a": (1, None), "b": (0, None), "c": (1, None), "d": (0, None)}
    path.write_text("ImageId,tube,split\na,1,val\nb,0,test\n")
    assert read_tubes_csv(path) == {"a": (1, "validation"), "b": (0, "test")}


@pytest.mark.parametrize("text, message", [
    ("ImageId,label\na,1\n", r"missing column.*tube"),
    ("ImageId,tube\na,1\na,0\n", "listed twice"),
    ("ImageId,tube\na,2\n", "must be 0 or 1"),
    ("ImageId,tube\n,1\n", "empty ImageId"),
    ("ImageId,tube,split\na,1,train\n", "must be val or test"),
    ("ImageId,tube,split\na,1,val\nb,0,\n", "filled for some images only"),
])
def test_read_tubes_csv_errors(tmp_path, text, message):
    path = tmp_path / "tubes.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_tubes_csv(path)


def test_read_tubes_csv_rejects_a_pickle(tmp_path):
    path = tmp_path / "cxr_tube_dict.pkl"
    path.write_bytes(pickle.dumps({"a": True}))
    with pytest.raises(ValueError, match="siim-tubes"):
        read_tubes_csv(path)


def test_tubes_pickle_to_csv(tmp_path):
    labels = {"1.2.1": True, "1.2.2": False, "1.2.3": True}
    (tmp_path / "cxr_tube_dict.pkl").write_bytes(pickle.dumps(labels))
    out = tubes_pickle_to_csv(tmp_path / "cxr_tube_dict.pkl", tmp_path / "tubes.csv")
    assert out.read_text() == "ImageId,tube\n1.2.1,1\n1.2.2,0\n1.2.3,1\n"
    assert read_tubes_csv(out) == {"1.2.1": (1, None), "1.2.2": (0, None), "1.2.3": (1, None)}
    (tmp_path / "test.pkl").write_bytes(pickle.dumps({"1.2.9": False}))
    out = tubes_pickle_to_csv(tmp_path / "cxr_tube_dict.pkl", tmp_path / "tubes2.csv",
                              test_pickle=tmp_path / "test.pkl")
    assert read_tubes_csv(out) == {"1.2.1": (1, "validation"), "1.2.2": (0, "validation"),
                                   "1.2.3": (1, "validation"), "1.2.9": (0, "test")}
    (tmp_path / "overlap.pkl").write_bytes(pickle.dumps({"1.2.2": False}))
    with pytest.raises(ValueError, match=r"1 ImageId\(s\) are in both"):
        tubes_pickle_to_csv(tmp_path / "cxr_tube_dict.pkl", tmp_path / "x.csv", test_pickle=tmp_path / "overlap.pkl")
    assert not (tmp_path / "x.csv").exists()


# ----------------------------------------------------------------------------------------------- splits
@pytest.fixture(scope="module")
def paper_scale():
    """12,047 images, 2,669 with pneumothorax, 1,951 with a chest-tube label (Sec. 5)."""
    rng = np.random.default_rng(3)
    ids = [f"1.2.{k}" for k in range(12047)]
    y = np.zeros(12047, np.int64)
    y[rng.choice(12047, 2669, replace=False)] = 1
    labelled = rng.choice(12047, 1951, replace=False)
    # tubes mostly on pneumothorax images, like the real labels
    tube = np.where(y[labelled] == 1, rng.random(1951) < 0.7, rng.random(1951) < 0.1).astype(int)
    tubes = {ids[k]: (int(t), None) for k, t in zip(labelled, tube)}
    return ids, y, tubes


@pytest.mark.parametrize("mode", ["official", "random"])
def test_split_paper_counts(paper_scale, mode):
    ids, y, tubes = paper_scale
    assignment = siim_split(ids, y, tubes, mode=mode, seed=5)
    counts = {k: sum(v == k for v in assignment.values()) for k in PAPER_SIIM_SIZES}
    assert counts == PAPER_SIIM_SIZES == {"training": 10096, "validation": 951, "test": 1000}
    for split in ("validation", "test"):
        members = [i for i, s in assignment.items() if s == split]
        assert all(i in tubes for i in members)
    assert all(assignment[i] in ("validation", "test") for i in tubes)


def test_split_keeps_strata_balance(paper_scale):
    ids, y, tubes = paper_scale
    assignment = siim_split(ids, y, tubes, mode="random", seed=1, n_val=300, n_test=500)
    index = {i: k for k, i in enumerate(ids)}
    pool = list(tubes)
    for split, size in (("test", 500), ("validation", 300)):
        assert sum(1 for s in assignment.values() if s == split) == size
    test = [i for i, s in assignment.items() if s == "test"]
    for cls in (0, 1):
        for tube in (0, 1):
            in_pool = sum(1 for i in pool if y[index[i]] == cls and tubes[i][0] == tube)
            taken = sum(1 for i in test if y[index[i]] == cls and tubes[i][0] == tube)
            # each (y, tube) stratum contributes its share of the test draw, to within one image
            assert abs(taken - in_pool * 500 / len(pool)) <= 1
    # the labelled images not drawn stay in training, with their tube labels
    assert sum(1 for i in tubes if assignment[i] == "training") == len(tubes) - 800


def test_split_seeds(paper_scale):
    ids, y, tubes = paper_scale
    a = siim_split(ids, y, tubes, mode="random", seed=0)
    assert a == siim_split(ids, y, tubes, mode="random", seed=0)
    assert a != siim_split(ids, y, tubes, mode="random", seed=1)
    assert a == siim_split(ids, y, tubes, mode="official", seed=0)  # no split column: the same draw


def test_split_official_follows_split_column():
    ids = ["a", "b", "c", "d", "e"]
    tubes = {"a": (1, "validation"), "c": (0, "test"), "d": (1, "test")}
    assert siim_split(ids, [1, 0, 0, 1, 1], tubes, mode="official") == {
        "a": "validation", "b": "training", "c": "test", "d": "test", "e": "training"}
    # the random split ignores the column
    random = siim_split(ids, [1, 0, 0, 1, 1], tubes, mode="random", n_val=0, n_test=1)
    assert sorted(random.values()) == ["test", "training", "training", "training", "training"]


def test_split_errors(paper_scale):
    ids, y, tubes = paper_scale
    with pytest.raises(ValueError, match="split mode"):
        siim_split(ids, y, tubes, mode="kfold")
    with pytest.raises(ValueError, match="random split only"):
        siim_split(ids, y, tubes, mode="official", n_test=10)
    with pytest.raises(ValueError, match="1951 images with a chest-tube label"):
        siim_split(ids, y, tubes, mode="random", n_val=1000, n_test=1000)
    with pytest.raises(ValueError, match="no image has a chest-tube label"):
        siim_split(ids, y, {}, mode="official")
    with pytest.raises(ValueError, match="same length"):
        siim_split(ids, y[:-1], tubes)


# ----------------------------------------------------------------------------------------------- images
def test_find_dicoms(siim):
    root, truth, _, _ = siim
    assert find_dicoms(root) == truth["paths"]
    with pytest.raises(FileNotFoundError, match="dicom-images-train"):
        find_dicoms(root / "nothere")


def test_read_dicom_matches_pydicom(siim):
    _, truth, _, _ = siim
    uid, path = next(iter(truth["paths"].items()))
    image = read_dicom(path)
    assert image.dtype == np.uint8
    np.testing.assert_array_equal(image, pydicom.dcmread(path).pixel_array)
    np.testing.assert_array_equal(image, truth["pixels"][uid])


def test_resize_mask_integer_factor_is_max_pool():
    rng = np.random.default_rng(0)
    mask = rng.random((64, 48)) < 0.05
    expected = mask.reshape(16, 4, 12, 4).any(axis=(1, 3))
    np.testing.assert_array_equal(resize_mask(mask, (16, 12)), expected)
    np.testing.assert_array_equal(resize_mask(mask, (64, 48)), mask)


@pytest.mark.parametrize("out_shape", [(7, 5), (30, 20), (100, 9)])
def test_resize_mask_any_overlap(out_shape):
    rng = np.random.default_rng(1)
    mask = rng.random((23, 17)) < 0.04
    got = resize_mask(mask, out_shape)
    h, w = mask.shape
    oh, ow = out_shape
    for i in range(oh):
        for j in range(ow):
            # source pixels whose extent [r, r + 1) overlaps the output pixel's [i * h / oh, (i + 1) * h / oh)
            rows = [r for r in range(h) if r < (i + 1) * h / oh and r + 1 > i * h / oh]
            cols = [c for c in range(w) if c < (j + 1) * w / ow and c + 1 > j * w / ow]
            assert got[i, j] == mask[np.ix_(rows, cols)].any()


def test_resize_image_area_is_block_mean():
    rng = np.random.default_rng(2)
    image = rng.integers(0, 256, size=(64, 64), dtype=np.uint8)
    expected = np.round(image.reshape(32, 2, 32, 2).astype(np.float64).mean(axis=(1, 3))).astype(np.uint8)
    np.testing.assert_array_equal(resize_image(image, 32), expected)
    rgb = rng.integers(0, 256, size=(30, 45, 3), dtype=np.uint8)
    expected = np.round(rgb.reshape(10, 3, 15, 3, 3).astype(np.float64).mean(axis=(1, 3))).astype(np.uint8)
    np.testing.assert_array_equal(resize_image(rgb, (10, 15)), expected)
    up = resize_image(image[:4, :4], 8)
    assert up.shape == (8, 8) and up.dtype == np.uint8
    assert up.min() >= image[:4, :4].min() and up.max() <= image[:4, :4].max()


# ----------------------------------------------------------------------------------------------- datalist
@pytest.fixture(scope="module")
def written(siim, tmp_path_factory):
    root, truth, tubes, labelled = siim
    out = tmp_path_factory.mktemp("siim_out") / "data"
    path = write_siim_datalist(root, out, tubes=tubes, size=32, split="official", seed=0)
    return path, json.loads(path.read_text())


def test_datalist_entries(siim, written):
    root, truth, _, labelled = siim
    path, content = written
    assert path == path.parent / "datalist.json"
    entries = {e["id"]: (split, e) for split in ("training", "validation", "test") for e in content[split]}
    assert set(entries) == set(truth["y"])
    tube_truth = dict(zip(labelled, [1, 0, 0, 1, 1, 1, 0, 0]))
    for image_id, (split, entry) in entries.items():
        assert entry["y"] == truth["y"][image_id]
        if image_id in tube_truth:
            assert split in ("validation", "test")
            assert entry["tube"] == entry["s"] == tube_truth[image_id]
        else:
            assert split == "training"
            assert entry["tube"] == UNKNOWN_TUBE and entry["s"] == 0
        assert entry["image"] == f"images/{image_id}.png" and entry["label"] == f"masks/{image_id}.png"
    assert content["counts"] == {k: len(content[k]) for k in ("training", "validation", "test")}
    # 8 labelled images: round(8 * 1000 / 1951) = 4 test, 4 validation
    assert content["counts"] == {"training": 6, "validation": 4, "test": 4}


def test_datalist_pixels(siim, written):
    _, truth, _, _ = siim
    path, content = written
    for split in ("training", "validation", "test"):
        for entry in content[split]:
            image_id = entry["id"]
            image = np.asarray(Image.open(path.parent / entry["image"]))
            mask = np.asarray(Image.open(path.parent / entry["label"]))
            block = truth["pixels"][image_id].reshape(32, 2, 32, 2).astype(np.float64).mean(axis=(1, 3))
            np.testing.assert_array_equal(image, np.round(block).astype(np.uint8))
            union = truth["mask"][image_id]
            np.testing.assert_array_equal(mask, union.reshape(32, 2, 32, 2).any(axis=(1, 3)) * 255)
            assert entry["y"] == int(mask.any())


def test_union_of_instances_differs_from_first_row(siim, written):
    _, truth, _, _ = siim
    path, content = written
    multi = [i for i in truth["mask"] if (truth["mask"][i] != truth["first"][i]).any()]
    assert multi, "the fixture must hold an image whose instances are not all in the first row"
    entry = next(e for s in ("training", "validation", "test") for e in content[s] if e["id"] == multi[0])
    mask = np.asarray(Image.open(path.parent / entry["label"])) > 0
    first = truth["first"][multi[0]].reshape(32, 2, 32, 2).any(axis=(1, 3))
    assert mask.sum() > first.sum() and (mask >= first).all()


@pytest.mark.parametrize("split", ["training", "validation", "test"])
def test_load_split_reads_the_datalist(written, split):
    path, content = written
    entries = load_split(split, datalist=path, require_mask=True)
    assert [e["id"] for e in entries] == [e["id"] for e in content[split]]
    loader = LoadImageOrArrayd(keys=["image", "label"])
    sample = loader(entries[0])
    # MONAI's PILReader reads the upright PNG as W x H: image and mask alike, so they stay aligned
    png_image = np.asarray(Image.open(entries[0]["image"]), dtype=np.float32)
    png_mask = np.asarray(Image.open(entries[0]["label"]), dtype=np.float32)
    assert tuple(sample["image"].shape) == (1, 32, 32)
    np.testing.assert_array_equal(sample["image"][0].numpy(), png_image.T)
    np.testing.assert_array_equal(sample["label"][0].numpy(), png_mask.T)


def test_full_size_and_random_split(siim, tmp_path):
    root, truth, tubes, _ = siim
    path = write_siim_datalist(root, tmp_path / "full", tubes=tubes, size=0, split="random", seed=3, n_val=2,
                               n_test=3)
    content = json.loads(path.read_text())
    assert content["counts"] == {"training": 9, "validation": 2, "test": 3}
    entry = content["training"][0]
    np.testing.assert_array_equal(np.asarray(Image.open(path.parent / entry["image"])), truth["pixels"][entry["id"]])
    np.testing.assert_array_equal(np.asarray(Image.open(path.parent / entry["label"])) > 0, truth["mask"][entry["id"]])
    # labelled images left over by the random split stay in training with their tube label
    assert sum(e["tube"] != UNKNOWN_TUBE for e in content["training"]) == 3


def test_split_column_official(siim, tmp_path):
    root, truth, _, labelled = siim
    splits = ["val"] * 5 + ["test"] * 3
    tubes = write_tubes(tmp_path / "tubes.csv", labelled, [1, 0, 0, 1, 1, 1, 0, 0], splits)
    content = json.loads(write_siim_datalist(root, tmp_path / "o", tubes=tubes, size=16).read_text())
    assert [e["id"] for e in content["validation"]] == labelled[:5]
    assert [e["id"] for e in content["test"]] == labelled[5:]


# ----------------------------------------------------------------------------------------------- bad inputs
def _copy_root(siim, tmp_path) -> Path:
    import shutil

    root = tmp_path / "root"
    shutil.copytree(siim[0], root)
    return root


def _nothing_written(out: Path) -> bool:
    return not out.exists()


def test_unreadable_dicom_fails_without_skip_bad(siim, tmp_path):
    root = _copy_root(siim, tmp_path)
    truth = siim[1]
    bad_id = list(truth["y"])[3]
    bad = root / truth["paths"][bad_id].relative_to(siim[0])
    bad.write_bytes(b"\x00" * 300)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=re.escape(str(bad))) as info:
        write_siim_datalist(root, out, tubes=root / "tubes.csv", size=16)
    assert "nothing was written" in str(info.value)
    assert _nothing_written(out)
    # an existing output folder is left as it was
    out.mkdir()
    (out / "keep.txt").write_text("x")
    with pytest.raises(ValueError):
        write_siim_datalist(root, out, tubes=root / "tubes.csv", size=16)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
    with pytest.warns(RuntimeWarning, match=re.escape(str(bad))):
        path = write_siim_datalist(root, out, tubes=root / "tubes.csv", size=16, skip_bad=True)
    content = json.loads(path.read_text())
    ids = [e["id"] for s in ("training", "validation", "test") for e in content[s]]
    assert bad_id not in ids and len(ids) == len(truth["y"]) - 1
    assert len(content["skipped"]) == 1 and str(bad) in content["skipped"][0]
    assert not (out / "images" / f"{bad_id}.png").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".staging")]


def test_missing_dicom_and_unknown_tube_label(siim, tmp_path):
    root = _copy_root(siim, tmp_path)
    truth = siim[1]
    gone = list(truth["y"])[1]
    (root / truth["paths"][gone].relative_to(siim[0])).unlink()
    tubes = root / "tubes.csv"
    tubes.write_text(tubes.read_text() + "9.9.9.9,1\n")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=r"2 problem") as info:
        write_siim_datalist(root, out, tubes=tubes, size=16)
    message = str(info.value)
    assert f"ImageId {gone} of train-rle.csv: no DICOM file" in message
    assert "ImageId 9.9.9.9 of the tubes file" in message
    assert _nothing_written(out)
    with pytest.warns(RuntimeWarning, match="skipped 2"):
        path = write_siim_datalist(root, out, tubes=tubes, size=16, skip_bad=True)
    ids = [e["id"] for s in ("training", "validation", "test") for e in json.loads(path.read_text())[s]]
    assert gone not in ids and "9.9.9.9" not in ids


def test_dicom_without_csv_row_is_left_out_with_warning(siim, tmp_path):
    root = _copy_root(siim, tmp_path)
    uid = generate_uid()
    write_dicom(root / "dicom-images-train" / "x" / "y" / f"{uid}.dcm", np.zeros((SIDE, SIDE), np.uint8), uid)
    with pytest.warns(RuntimeWarning, match="1 DICOM file"):
        path = write_siim_datalist(root, tmp_path / "out", tubes=root / "tubes.csv", size=16)
    ids = [e["id"] for s in ("training", "validation", "test") for e in json.loads(path.read_text())[s]]
    assert uid not in ids


@pytest.mark.parametrize("rle, message", [("1 2 3", "odd number"), (f"{SIDE * SIDE} 1", "past the end"),
                                          ("x y", "other than integers")])
def test_malformed_rle_in_csv_names_image_and_writes_nothing(siim, tmp_path, rle, message):
    root = _copy_root(siim, tmp_path)
    image_id = list(siim[1]["y"])[5]
    csv_path = root / "train-rle.csv"
    csv_path.write_text(csv_path.read_text() + f"{image_id}, {rle}\n")
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=rf"ImageId {re.escape(image_id)}.*{message}"):
        write_siim_datalist(root, out, tubes=root / "tubes.csv", size=16)
    assert _nothing_written(out)


def test_argument_errors(siim, tmp_path):
    root, _, tubes, _ = siim
    with pytest.raises(ValueError, match="tubes"):
        write_siim_datalist(root, tmp_path / "o", tubes=None)
    with pytest.raises(ValueError, match="split must be"):
        write_siim_datalist(root, tmp_path / "o", tubes=tubes, split="kfold")
    with pytest.raises(ValueError, match="size must be"):
        write_siim_datalist(root, tmp_path / "o", tubes=tubes, size=-3)
    with pytest.raises(FileNotFoundError, match="train-rle.csv"):
        write_siim_datalist(tmp_path, tmp_path / "o", tubes=tubes)
    assert not (tmp_path / "o").exists()


def test_workers_give_the_same_datalist(siim, written, tmp_path):
    root, _, tubes, _ = siim
    path = write_siim_datalist(root, tmp_path / "w", tubes=tubes, size=32, workers=3)
    content = json.loads(path.read_text())
    _, reference = written
    for split in ("training", "validation", "test"):
        assert content[split] == reference[split]
        for entry in content[split]:
            for key in ("image", "label"):
                assert (path.parent / entry[key]).read_bytes() == (
                    Path(written[0]).parent / entry[key]).read_bytes()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_split("test", datalist=path)
