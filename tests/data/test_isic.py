"""ISIC 2018 trap-set reader (spatialspec.data.isic): CSV parsing, splits, the spurious label, the datalist."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from spatialspec.data import load_split
from spatialspec.data.isic import (
    ISIC_ARTIFACTS,
    isic_splits,
    read_trap_set,
    spurious_labels,
    write_isic_datalist,
)
from spatialspec.metrics import auroc, robust_auroc
from tests.fixtures_real import isic_id, make_isic, write_trap_csv


@pytest.fixture(scope="module")
def isic(tmp_path_factory):
    root = tmp_path_factory.mktemp("isic")
    return root, make_isic(root)


def test_read_trap_set(isic):
    root, truth = isic
    rows = read_trap_set(truth["trap"] / "isic_annotated_train1.csv")
    assert [r["id"] for r in rows] == [isic_id(k) for k in range(14)]
    for k, row in enumerate(rows):
        assert row["y"] == truth["label"][k]
        assert [row[a] for a in (*ISIC_ARTIFACTS, "vasc")] == truth["flags"][k]
        assert row["label_string"] == ("malignant" if truth["label"][k] else "benign")


def test_read_trap_set_without_index_column_and_float_flags(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("image,dark_corner,hair,gel_border,gel_bubble,ruler,ink,patches,label\n"
                    "ISIC_0000001.png,1.0,0,0,0,0,0,1,1\n")
    assert read_trap_set(path) == [{"id": "ISIC_0000001", "y": 1, "dark_corner": 1, "hair": 0, "gel_border": 0,
                                    "gel_bubble": 0, "ruler": 0, "ink": 0, "patches": 1}]


@pytest.mark.parametrize("text, message", [
    (",image,dark_corner,hair,gel_border,gel_bubble,ruler,ink,vasc,label\n", r"missing column.*patches"),
    (",image,dark_corner,hair,gel_border,gel_bubble,ruler,ink,patches,label\n0,a.png,0,0,0,2,0,0,0,1\n",
     r"line 2 \(a\.png\): column 'gel_bubble' must be 0 or 1"),
    (",image,dark_corner,hair,gel_border,gel_bubble,ruler,ink,patches,label\n0,a.png,0,0,0,0,0,0,0,benign\n",
     "column 'label' must be 0 or 1"),
    (",image,dark_corner,hair,gel_border,gel_bubble,ruler,ink,patches,label\n0,,0,0,0,0,0,0,0,1\n",
     "empty image name"),
    (",image,dark_corner,hair,gel_border,gel_bubble,ruler,ink,patches,label\n0,a.png,0,0\n", "4 fields"),
    ("", "empty"),
])
def test_read_trap_set_errors(tmp_path, text, message):
    path = tmp_path / "isic_annotated_train1.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"isic_annotated_train1\.csv.*{message}|{message}"):
        read_trap_set(path)


def test_published_val_overlap_warns(isic):
    _, truth = isic
    with pytest.warns(UserWarning, match="4 of the 4 validation images are also training images"):
        splits, notes = isic_splits(truth["trap"], seed=1)
    assert [len(splits[s]) for s in ("training", "validation", "test")] == [14, 4, 8]
    assert len(notes) == 1


def test_val_from_train(isic):
    _, truth = isic
    splits, notes = isic_splits(truth["trap"], seed=2, val_from_train=0.3, val_seed=4)
    assert notes == []
    train = [r["id"] for r in splits["training"]]
    val = [r["id"] for r in splits["validation"]]
    assert not set(train) & set(val)
    assert sorted(train + val) == sorted(isic_id(k) for k in range(14))
    assert len(val) == round(0.3 * 14) == 4
    # stratified: training holds 5 malignant (0, 3, 6, 9, 12) of 14; 4 * 5 / 14 = 1.43 -> 1 malignant drawn
    assert sum(r["y"] for r in splits["validation"]) == 1
    again, _ = isic_splits(truth["trap"], seed=2, val_from_train=0.3, val_seed=4)
    assert again == splits
    other = [isic_splits(truth["trap"], seed=2, val_from_train=0.3, val_seed=s)[0]["validation"] for s in range(5)]
    assert len({tuple(r["id"] for r in v) for v in other}) > 1


def test_split_errors(isic, tmp_path):
    _, truth = isic
    for seed in (0, 6, 1.5, True):
        with pytest.raises(ValueError, match="seed must be 1, 2, 3, 4 or 5"):
            isic_splits(truth["trap"], seed=seed)
    for fraction in (0.0, 1.0, -0.2):
        with pytest.raises(ValueError, match="val_from_train"):
            isic_splits(truth["trap"], seed=1, val_from_train=fraction)
    with pytest.raises(ValueError, match="leaves an empty"):
        isic_splits(truth["trap"], seed=1, val_from_train=0.01)
    with pytest.raises(FileNotFoundError, match="isic_annotated_train3.csv"):
        isic_splits(truth["trap"], seed=3)
    trap = tmp_path / "trap"
    shutil.copytree(truth["trap"], trap)
    write_trap_csv(trap / "isic_annotated_test1.csv", [(0, [0] * 8, 0)])  # ISIC_0000000 is malignant in train
    with pytest.raises(ValueError, match="image ISIC_0000000 has label 0 in the test file and 1"):
        isic_splits(trap, seed=1)
    write_trap_csv(trap / "isic_annotated_test1.csv", [(3, [0] * 8, 1)])
    with pytest.warns(UserWarning) as record:
        isic_splits(trap, seed=1)
    assert any("1 test image(s) are also training images, e.g. ISIC_0000003" in str(w.message) for w in record)


def test_spurious_labels():
    rows = [{"y": y, **dict(zip(ISIC_ARTIFACTS, flags))} for y, flags in (
        (1, [0, 0, 0, 0, 0, 0, 0]), (0, [0, 1, 0, 0, 1, 0, 0]), (1, [0, 0, 0, 0, 0, 0, 1]), (0, [0] * 7))]
    assert spurious_labels(rows, "test") == [0, 1, 0, 1]
    assert spurious_labels(rows, "training") == [1, 0, 1, 0]
    assert spurious_labels(rows, "validation") == [1, 0, 1, 0]
    assert spurious_labels(rows, "test", "any") == [0, 1, 1, 0]
    assert spurious_labels(rows, "test", "ruler") == [0, 1, 0, 0]
    with pytest.raises(ValueError, match="spurious rule"):
        spurious_labels(rows, "test", "vasc")
    with pytest.raises(ValueError, match="split must be"):
        spurious_labels(rows, "val")


def test_trap_rule_makes_robust_equal_overall():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    scores = rng.random(200) + 0.3 * y
    s = spurious_labels([{"y": int(v)} for v in y], "test")
    assert robust_auroc(scores, y, s) == auroc(scores, y)


@pytest.fixture(scope="module")
def written(isic, tmp_path_factory):
    root, truth = isic
    out = tmp_path_factory.mktemp("isic_out") / "data"
    with pytest.warns(UserWarning, match="also training images"):
        path = write_isic_datalist(root, truth["trap"], out, seed=1, size=16)
    return path, json.loads(path.read_text())


def test_datalist_entries(isic, written):
    _, truth = isic
    path, content = written
    assert content["counts"] == {"training": 14, "validation": 4, "test": 8}
    assert content["trap_set"] == 1 and content["spurious"] == "trap" and content["warnings"]
    expected_ids = {"training": range(14), "validation": (1, 3, 6, 9), "test": range(14, 22)}
    for split, ks in expected_ids.items():
        entries = content[split]
        assert [e["id"] for e in entries] == [isic_id(k) for k in ks]
        for k, entry in zip(ks, entries):
            assert entry["y"] == truth["label"][k]
            assert entry["s"] == (1 - entry["y"] if split == "test" else entry["y"])
            assert [entry[a] for a in (*ISIC_ARTIFACTS, "vasc")] == truth["flags"][k]
            assert entry["image"] == f"images/{isic_id(k)}.png"
            assert entry["label"] == f"masks/{isic_id(k)}.png" and entry["lesion"] == f"lesions/{isic_id(k)}.png"


def test_datalist_pixels(isic, written):
    root, truth = isic
    path, content = written
    for entry in content["training"] + content["test"]:
        k = int(entry["id"].split("_")[1])
        source = np.asarray(Image.open(root / "ISIC2018_Task1-2_Training_Input" / f"{entry['id']}.jpg"))
        block = source.reshape(16, 3, 16, 4, 3).astype(np.float64).mean(axis=(1, 3))
        np.testing.assert_array_equal(np.asarray(Image.open(path.parent / entry["image"])),
                                      np.round(block).astype(np.uint8))
        pooled = truth["lesion"][k].reshape(16, 3, 16, 4).any(axis=(1, 3))
        lesion = np.asarray(Image.open(path.parent / entry["lesion"]))
        mask = np.asarray(Image.open(path.parent / entry["label"]))
        np.testing.assert_array_equal(lesion, pooled * 255)
        # the abnormality mask: the lesion of a malignant image, nothing for a benign one
        np.testing.assert_array_equal(mask, pooled * 255 * truth["label"][k])
        assert entry["y"] == int(mask.any())


@pytest.mark.parametrize("split", ["training", "validation", "test"])
def test_load_split(written, split):
    path, content = written
    entries = load_split(split, datalist=path, require_mask=True)
    assert len(entries) == len(content[split])
    assert all(Path(e["image"]).is_file() and Path(e["label"]).is_file() for e in entries)


def test_original_size_references_the_jpegs(isic, tmp_path):
    root, truth = isic
    path = write_isic_datalist(root, truth["trap"], tmp_path / "full", seed=2, size=0, val_from_train=0.25,
                               spurious="hair")
    content = json.loads(path.read_text())
    entry = content["test"][0]
    assert entry["image"] == str(root.resolve() / "ISIC2018_Task1-2_Training_Input" / f"{entry['id']}.jpg")
    assert entry["s"] == entry["hair"]
    k = int(entry["id"].split("_")[1])
    np.testing.assert_array_equal(np.asarray(Image.open(path.parent / entry["lesion"])) > 0, truth["lesion"][k])
    assert not (path.parent / "images").exists()
    entries = load_split("test", datalist=path)
    assert entries[0]["image"] == entry["image"]
    assert content["val_from_train"] == 0.25 and content["warnings"] == []


def _copy(isic, tmp_path) -> tuple[Path, Path]:
    root = tmp_path / "root"
    shutil.copytree(isic[0], root)
    return root, root / "trap-sets"


@pytest.mark.parametrize("damage, message", [
    (lambda r: (r / "ISIC2018_Task1-2_Training_Input" / "ISIC_0000015.jpg").unlink(),
     r"ISIC_0000015: file not found: .*ISIC_0000015\.jpg"),
    (lambda r: (r / "ISIC2018_Task1_Training_GroundTruth" / "ISIC_0000002_segmentation.png").unlink(),
     r"ISIC_0000002: file not found: .*ISIC_0000002_segmentation\.png"),
    (lambda r: (r / "ISIC2018_Task1-2_Training_Input" / "ISIC_0000004.jpg").write_bytes(b"broken"),
     r"ISIC_0000004: cannot read .*ISIC_0000004\.jpg"),
    (lambda r: Image.fromarray(np.zeros((10, 10), np.uint8)).save(
        r / "ISIC2018_Task1_Training_GroundTruth" / "ISIC_0000005_segmentation.png"),
     r"ISIC_0000005: the image is 48 x 64 but its mask .* is 10 x 10"),
])
def test_bad_files_write_nothing(isic, tmp_path, damage, message):
    root, trap = _copy(isic, tmp_path)
    damage(root)
    out = tmp_path / "out"
    with pytest.raises(ValueError, match=message) as info:
        write_isic_datalist(root, trap, out, seed=1, size=16, val_from_train=0.25)
    assert "1 problem" in str(info.value) and "nothing was written" in str(info.value)
    assert not out.exists()


def test_argument_errors(isic, tmp_path):
    root, truth = isic
    with pytest.raises(ValueError, match="spurious rule"):
        write_isic_datalist(root, truth["trap"], tmp_path / "o", spurious="vasc")
    with pytest.raises(ValueError, match="size must be"):
        write_isic_datalist(root, truth["trap"], tmp_path / "o", size=-1)
    with pytest.raises(FileNotFoundError, match=re.escape("ISIC2018_Task1-2_Training_Input")):
        write_isic_datalist(tmp_path, truth["trap"], tmp_path / "o")
    with pytest.raises(FileNotFoundError, match="trap-set folder"):
        write_isic_datalist(root, tmp_path / "none", tmp_path / "o")
    assert not (tmp_path / "o").exists()
