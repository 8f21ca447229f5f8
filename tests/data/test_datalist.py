"""Decathlon-style datalists (spatialspec.data.datalist) and LoadImageOrArrayd."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from spatialspec.data import SPLITS, SyntheticParams, generate_split, load_split, write_synthetic_datalist
from spatialspec.transforms import LoadImageOrArrayD, LoadImageOrArrayd, LoadImageOrArrayDict

PARAMS = SyntheticParams(m=6, n=16, a=4, b=4, n_val=4, n_test=5)
SEED = 4
SIZES = {"training": 6, "validation": 4, "test": 5}
KEYS = ("image", "label", "spurious_mask")


@pytest.fixture(scope="module", params=["nifti", "png"])
def written(request, tmp_path_factory):
    fmt = request.param
    out = tmp_path_factory.mktemp(f"synthetic_{fmt}")
    path = write_synthetic_datalist(out, PARAMS, seed=SEED, fmt=fmt)
    return fmt, path


@pytest.fixture(scope="module")
def nifti(tmp_path_factory):
    return write_synthetic_datalist(tmp_path_factory.mktemp("nifti"), PARAMS, seed=SEED, fmt="nifti")


@pytest.fixture(scope="module")
def png(tmp_path_factory):
    return write_synthetic_datalist(tmp_path_factory.mktemp("png"), PARAMS, seed=SEED, fmt="png")


def test_datalist_json_content(written):
    fmt, path = written
    assert path.name == "datalist.json" and path.is_file()
    content = json.loads(path.read_text())
    assert content["format"] == fmt
    assert content["seed"] == SEED
    assert content["synthetic"] == PARAMS.to_dict()
    ext = ".nii.gz" if fmt == "nifti" else ".png"
    for split in SPLITS:
        entries = content[split]
        generated = generate_split(PARAMS, split, SEED)
        assert len(entries) == SIZES[split]
        for entry, sample in zip(entries, generated):
            assert {"y", "s", "image", "label", "spurious_mask"} <= set(entry)
            assert (entry["y"], entry["s"]) == (sample["y"], sample["s"])
            for key in KEYS:
                rel = entry[key]
                assert not os.path.isabs(rel) and rel.startswith(f"{split}/") and rel.endswith(ext)
                assert (path.parent / rel).is_file()
    if fmt == "png":
        assert set(content["intensity_range"]) == set(SPLITS)
        for split in SPLITS:
            images = np.stack([d["image"] for d in generate_split(PARAMS, split, SEED)])
            assert content["intensity_range"][split] == pytest.approx([images.min(), images.max()])
    # no temporary datalist is left behind
    assert [p.name for p in path.parent.iterdir() if p.suffix == ".json"] == ["datalist.json"]


@pytest.mark.parametrize("split", SPLITS)
def test_load_split_absolute_paths(written, split):
    _, path = written
    entries = load_split(split, datalist=path)
    assert len(entries) == SIZES[split]
    for entry in entries:
        for key in KEYS:
            assert os.path.isabs(entry[key]), (key, entry[key])
            assert Path(entry[key]).is_file()
            assert Path(entry[key]).parent == path.parent / split
        assert entry["y"] in (0, 1) and entry["s"] in (0, 1)
    # a str path works as well
    assert load_split(split, datalist=str(path)) == entries


@pytest.mark.parametrize("split", SPLITS)
def test_nifti_round_trip_exact(nifti, split):
    loader = LoadImageOrArrayd(keys=list(KEYS))
    generated = generate_split(PARAMS, split, SEED)
    for entry, sample in zip(load_split(split, datalist=nifti), generated):
        loaded = loader(entry)
        for key in KEYS:
            assert isinstance(loaded[key], MetaTensor)
            assert loaded[key].shape == (1, PARAMS.n, PARAMS.n)
            assert loaded[key].dtype == torch.float32
            np.testing.assert_array_equal(loaded[key].numpy(), sample[key])
        assert loaded["y"] == sample["y"]


@pytest.mark.parametrize("split", SPLITS)
def test_png_round_trip(png, split):
    loader = LoadImageOrArrayd(keys=list(KEYS))
    content = json.loads(png.read_text())
    lo, hi = content["intensity_range"][split]
    generated = generate_split(PARAMS, split, SEED)
    for entry, sample in zip(load_split(split, datalist=png), generated):
        loaded = loader(entry)
        for key in ("label", "spurious_mask"):
            assert loaded[key].shape == (1, PARAMS.n, PARAMS.n)
            np.testing.assert_array_equal(loaded[key].numpy() > 0, sample[key] > 0)
        # the image is the generator's up to 8-bit quantisation of [lo, hi]
        restored = loaded["image"].numpy() / 255.0 * (hi - lo) + lo
        np.testing.assert_allclose(restored, sample["image"], atol=(hi - lo) / 255 / 2 + 1e-5)


def test_png_mask_orientation_not_transposed(tmp_path):
    """A mask written to PNG reads back in the same (row, column) orientation, on a non-symmetric mask."""
    p = SyntheticParams(m=30, n=16, a=3, b=4, n_val=1, n_test=1, mu_y=1.0, rho=0.0)
    generated = generate_split(p, "training", 0)
    off_diagonal = [i for i, d in enumerate(generated) if np.nonzero(d["label"][0])[0].min()
                    != np.nonzero(d["label"][0])[1].min()]
    assert off_diagonal  # some block's top-left row != column, so a transpose would move it
    path = write_synthetic_datalist(tmp_path, p, seed=0, fmt="png")
    entries = load_split("training", datalist=path)
    loader = LoadImageOrArrayd(keys=["label"])
    for i in off_diagonal:
        loaded = loader(entries[i])["label"].numpy()
        expected = generated[i]["label"]
        np.testing.assert_array_equal(loaded > 0, expected > 0)
        assert not np.array_equal(loaded > 0, np.swapaxes(expected, -1, -2) > 0)


@pytest.mark.parametrize("cls", [LoadImageOrArrayd, LoadImageOrArrayD, LoadImageOrArrayDict])
def test_load_image_or_array_arrays(cls):
    sample = generate_split(PARAMS, "test", SEED)[0]
    out = cls(keys=["image", "label"])(sample)
    for key in ("image", "label"):
        assert isinstance(out[key], MetaTensor) and out[key].dtype == torch.float32
        np.testing.assert_array_equal(out[key].numpy(), sample[key])
    # a 2-D array gets a channel dimension; dtype follows the argument
    plane = np.arange(12, dtype=np.int64).reshape(3, 4)
    out2 = cls(keys="x", dtype=torch.float64)({"x": plane})
    assert out2["x"].shape == (1, 3, 4) and out2["x"].dtype == torch.float64
    np.testing.assert_array_equal(out2["x"].numpy()[0], plane)


def test_load_image_or_array_path_object(nifti):
    entry = load_split("test", datalist=nifti)[0]
    out = LoadImageOrArrayd(keys="image")({"image": Path(entry["image"])})
    np.testing.assert_array_equal(out["image"].numpy(), generate_split(PARAMS, "test", SEED)[0]["image"])


def test_load_image_or_array_without_metadata(nifti):
    """track_meta=False: plain tensors with the same values, from arrays and files; not part of the fingerprint."""
    from monai.data import set_track_meta

    from spatialspec.identity import _plain

    sample = generate_split(PARAMS, "test", SEED)[0]
    with_meta = LoadImageOrArrayd(keys=["image", "label"])(sample)
    plain = LoadImageOrArrayd(keys=["image", "label"], track_meta=False)(sample)
    for key in ("image", "label"):
        assert type(plain[key]) is torch.Tensor and plain[key].dtype == torch.float32
        assert torch.equal(plain[key], with_meta[key].as_tensor())
    from_file = LoadImageOrArrayd(keys="image", track_meta=False)(load_split("test", datalist=nifti)[0])["image"]
    assert type(from_file) is torch.Tensor
    np.testing.assert_array_equal(from_file.numpy(), sample["image"])
    set_track_meta(False)  # None follows MONAI's global switch
    try:
        assert type(LoadImageOrArrayd(keys="image")(sample)["image"]) is torch.Tensor
    finally:
        set_track_meta(True)
    assert _plain(LoadImageOrArrayd(keys="image", track_meta=False)) == _plain(LoadImageOrArrayd(keys="image"))
    with pytest.raises(ValueError, match="track_meta"):
        LoadImageOrArrayd(keys="image", track_meta="no")


def test_load_image_or_array_missing_file(tmp_path):
    missing = tmp_path / "nope.nii.gz"
    with pytest.raises(RuntimeError, match=re.escape(str(missing))):
        LoadImageOrArrayd(keys="image")({"image": str(missing)})


# ---------------------------------------------------------------------------------------------------- synthetic


@pytest.mark.parametrize("split", SPLITS)
def test_load_split_without_datalist_generates(split):
    for datalist in (None, ""):
        entries = load_split(split, datalist=datalist, synthetic=PARAMS, seed=SEED)
        generated = generate_split(PARAMS, split, SEED)
        assert len(entries) == SIZES[split]
        for e, g in zip(entries, generated):
            assert (e["y"], e["s"], e["id"]) == (g["y"], g["s"], g["id"])
            for key in KEYS:
                np.testing.assert_array_equal(e[key], g[key])


def test_load_split_synthetic_dict():
    entries = load_split("validation", synthetic={"m": 3, "n": 12, "a": 3, "b": 3, "n_val": 7}, seed=1)
    assert len(entries) == 7
    assert entries[0]["image"].shape == (1, 12, 12)


# ---------------------------------------------------------------------------------------------------- errors


def test_missing_datalist_file(tmp_path):
    missing = tmp_path / "absent" / "datalist.json"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        load_split("training", datalist=missing)


def _write(tmp_path: Path, content) -> Path:
    path = tmp_path / "list.json"
    path.write_text(json.dumps(content) if not isinstance(content, str) else content)
    return path


def test_entry_missing_y(tmp_path):
    good = {"image": "a.nii.gz", "label": "a_mask.nii.gz", "y": 1, "s": 0}
    bad = {"image": "b.nii.gz", "label": "b_mask.nii.gz", "s": 0}
    path = _write(tmp_path, {"training": [good], "test": [good, good, bad]})
    assert len(load_split("training", datalist=path)) == 1
    with pytest.raises(ValueError) as info:
        load_split("test", datalist=path)
    message = str(info.value)
    assert str(path) in message
    assert "'test'" in message
    assert re.search(r"entry 2\b", message)
    assert "'y'" in message


def test_entry_missing_label_only_when_required(tmp_path):
    entry = {"image": "a.nii.gz", "y": 0, "s": 1}
    path = _write(tmp_path, {"validation": [entry]})
    with pytest.raises(ValueError, match=r"entry 0.*'label'"):
        load_split("validation", datalist=path)
    assert load_split("validation", datalist=path, require_mask=False)[0]["y"] == 0


def test_entry_bad_label_value(tmp_path):
    path = _write(tmp_path, {"training": [{"image": "a.nii.gz", "label": "m.nii.gz", "y": 2, "s": 0}]})
    with pytest.raises(ValueError, match=r"entry 0: field 'y'"):
        load_split("training", datalist=path)


def test_split_absent(tmp_path):
    path = _write(tmp_path, {"training": [{"image": "a.nii.gz", "label": "m.nii.gz", "y": 1, "s": 1}]})
    with pytest.raises(ValueError, match="'test'"):
        load_split("test", datalist=path)


def test_unknown_split_name(tmp_path):
    with pytest.raises(ValueError, match="'train'"):
        load_split("train")


def test_invalid_json(tmp_path):
    path = _write(tmp_path, "{not json")
    with pytest.raises(ValueError, match=re.escape(str(path))):
        load_split("training", datalist=path)


def test_write_bad_format(tmp_path):
    with pytest.raises(ValueError, match="jpeg"):
        write_synthetic_datalist(tmp_path, PARAMS, fmt="jpeg")
