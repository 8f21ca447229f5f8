"""spatialspec.data.validate_datalist: every datalist defect is found before anything trains, all of them in one
error naming split, entry and field; empty (y, s) subgroups of validation and test are warned about."""

from __future__ import annotations

import copy
import json
import logging
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from monai.transforms import LoadImage
from PIL import Image

from spatialspec.data import DatalistError, SyntheticParams, load_split, validate_datalist, write_synthetic_datalist
from spatialspec.data.validate import require_datalist_file, spatial_shape
from spatialspec.errors import InputError

PARAMS = SyntheticParams(m=8, n=12, a=3, b=4, n_val=8, n_test=12, mu_y=0.5)


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, dict]:
    """A valid PNG datalist (relative paths) and its content."""
    path = write_synthetic_datalist(tmp_path_factory.mktemp("valid"), PARAMS, seed=3, fmt="png")
    return path, json.loads(path.read_text())


_counter = iter(range(10**6))


def variant(written, change=None, content=None) -> Path:
    """A datalist beside the valid one (so its relative paths resolve), ``change``d in place or replaced."""
    path, original = written
    data = copy.deepcopy(original) if content is None else content
    if change is not None:
        change(data)
    target = path.parent / f"variant_{next(_counter)}.json"
    target.write_text(data if isinstance(data, str) else json.dumps(data))
    return target


def problems_of(path: Path, **kwargs) -> list[str]:
    with pytest.raises(DatalistError) as info:
        validate_datalist(path, **kwargs)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    return [str(p) for p in info.value.problems]


def test_valid_datalist_report(written):
    path, content = written
    report = validate_datalist(path)
    assert report.path == path and report.sizes == {"training": 8, "validation": 8, "test": 12}
    for split in ("training", "validation", "test"):
        expected = {f"y{y}s{s}": sum(e["y"] == y and e["s"] == s for e in content[split]) for y in (0, 1)
                    for s in (0, 1)}
        assert report.subgroups[split] == expected


def test_json_syntax_error(written):
    path = variant(written, content='{"training": [')
    assert len(problems := problems_of(path)) == 1 and "not valid JSON" in problems[0]


def test_not_an_object_and_not_found(written, tmp_path):
    assert "must be a JSON object" in problems_of(variant(written, content=[1, 2]))[0]
    with pytest.raises(InputError, match="file not found"):
        validate_datalist(tmp_path / "absent.json")
    with pytest.raises(InputError, match="splits must name"):
        validate_datalist(written[0], ["train"])


def test_missing_and_empty_splits(written):
    path = variant(written, lambda d: (d.pop("test"), d.update(validation=[])))
    assert problems_of(path) == ["split 'validation': is empty",
                                 "split 'test': missing (the datalist has 'training', 'validation')"]
    # a command that does not read them is not stopped by them
    assert validate_datalist(path, ["training"]).sizes == {"training": 8}
    assert "must be a list" in problems_of(variant(written, lambda d: d.update(test={"a": 1})), splits=["test"])[0]


def test_missing_file_names_the_resolved_path(written):
    path = variant(written, lambda d: d["test"][3].update(image="test/absent.png"))
    assert problems_of(path) == [f"split 'test', entry 3, field 'image': file not found: "
                                 f"{path.parent / 'test' / 'absent.png'}"]


def test_relative_paths_resolve_against_the_datalist_folder(written, tmp_path, monkeypatch):
    path, content = written
    data = copy.deepcopy(content)
    for split in ("training", "validation", "test"):
        for entry in data[split]:
            for key in ("image", "label", "spurious_mask"):
                entry[key] = f"../{entry[key]}"
    sub = path.parent / "lists"
    sub.mkdir(exist_ok=True)
    (sub / "up.json").write_text(json.dumps(data))
    monkeypatch.chdir(tmp_path)  # not the datalist's folder
    assert validate_datalist(sub / "up.json").sizes["test"] == 12
    # absolute paths are taken as they are
    absolute = copy.deepcopy(content)
    absolute["training"][0]["image"] = str(path.parent / content["training"][0]["image"])
    (tmp_path / "absolute.json").write_text(json.dumps(absolute))
    problems = problems_of(tmp_path / "absolute.json")  # the other paths are now relative to tmp_path
    assert f"split 'training', entry 1, field 'image': file not found: {tmp_path / 'training'}" in "".join(problems)
    assert not any(p.startswith("split 'training', entry 0, field 'image'") for p in problems)


def test_shape_mismatch(written):
    odd = written[0].parent / "odd_mask.png"
    Image.fromarray(np.zeros((5, 7), np.uint8)).save(odd)
    path = variant(written, lambda d: d["validation"][2].update(label=odd.name))
    assert problems_of(path) == ["split 'validation', entry 2, field 'label': shape 7 x 5 differs from the image's "
                                 "12 x 12"]
    assert validate_datalist(path, check_shapes=False).sizes["validation"] == 8


def test_unreadable_image(written):
    broken = written[0].parent / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    path = variant(written, lambda d: d["training"][1].update(image=broken.name))
    problem, = problems_of(path)
    assert problem.startswith("split 'training', entry 1, field 'image': cannot read") and "broken.png" in problem


@pytest.mark.parametrize("value, message", [
    ("1", "must be the integer 0 or 1, got '1' (a string)"),
    (2, "must be the integer 0 or 1, got 2"),
    (1.0, "must be the integer 0 or 1, got 1.0"),
    (None, "must be the integer 0 or 1, got None"),
])
def test_labels_must_be_0_or_1(written, value, message):
    path = variant(written, lambda d: d["test"][5].update(y=value))
    assert problems_of(path) == [f"split 'test', entry 5, field 'y': {message}"]
    path = variant(written, lambda d: d["training"][0].update(s=value))
    assert problems_of(path) == [f"split 'training', entry 0, field 's': {message}"]


def test_json_booleans_are_labels(written):
    path = variant(written, lambda d: [e.update(y=bool(e["y"]), s=bool(e["s"])) for e in d["test"]])
    assert validate_datalist(path).sizes["test"] == 12


def test_missing_fields(written):
    path = variant(written, lambda d: [e.pop("y") for e in d["test"]])
    problems = problems_of(path)
    # the labels are the problem; no class check on labels that are not there
    assert problems == [f"split 'test', entry {i}, field 'y': missing" for i in range(12)]
    with pytest.raises(DatalistError, match=re.escape("split 'test', entries 0-11 (12), field 'y': missing")):
        validate_datalist(path)
    assert problems_of(variant(written, lambda d: d["validation"][4].pop("s"))) == [
        "split 'validation', entry 4, field 's': missing"]


def test_label_mask_required_only_for_pixel_wise_levels(written):
    path = variant(written, lambda d: [e.pop("label") for split in ("training", "validation", "test")
                                       for e in d[split]])
    assert len(problems_of(path)) == 28 and "field 'label': missing" in problems_of(path)[0]
    assert validate_datalist(path, require_label=False).sizes["training"] == 8


def test_spurious_mask_required_for_the_audit(written):
    path = variant(written, lambda d: d["test"][0].pop("spurious_mask"))
    assert validate_datalist(path, ["test"]).sizes["test"] == 12
    assert problems_of(path, splits=["test"], require_spurious_mask=True) == [
        "split 'test', entry 0, field 'spurious_mask': missing"]


def test_entry_not_an_object_and_path_not_a_string(written):
    path = variant(written, lambda d: (d["training"].append("img.png"), d["test"][1].update(image=7)))
    assert problems_of(path) == ["split 'training', entry 8: must be an object with image, y and s, got str 'img.png'",
                                 "split 'test', entry 1, field 'image': must be a file path, got 7"]


def test_an_image_in_test_and_another_split_is_an_error(written):
    path = variant(written, lambda d: d["test"][4].update(image=d["training"][6]["image"]))
    image = written[0].parent / written[1]["training"][6]["image"]
    assert problems_of(path) == [f"split 'test', entry 4, field 'image': {image} is also in 'training' entry 6"]


def test_training_and_validation_sharing_images_is_a_warning(written, caplog):
    # the published ISIC trap sets' validation images are training images (docs/datasets.md)
    path = variant(written, lambda d: d["validation"][0].update(image=d["training"][0]["image"],
                                                                 label=d["training"][0]["label"],
                                                                 spurious_mask=d["training"][0]["spurious_mask"],
                                                                 y=d["training"][0]["y"], s=d["training"][0]["s"]))
    with caplog.at_level(logging.WARNING, logger="spatialspec.data.validate"):
        report = validate_datalist(path)
    assert any("1 image(s) are in both 'training' and 'validation'" in w for w in report.warnings)
    assert any("1 image(s) are in both" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("split", ["validation", "test"])
def test_evaluation_splits_need_both_classes(written, split):
    path = variant(written, lambda d: d.update({split: [e for e in d[split] if e["y"] == 1]}))
    n = sum(e["y"] == 1 for e in written[1][split])
    assert problems_of(path) == [f"split '{split}', field 'y': holds only y = 1 ({n} entries): its AUROCs need "
                                 "both classes"]
    assert validate_datalist(path, require_both_classes=False).sizes[split] == n
    # training may hold one class
    path = variant(written, lambda d: d.update(training=[e for e in d["training"] if e["y"] == 1]))
    assert validate_datalist(path).sizes["training"] == sum(e["y"] == 1 for e in written[1]["training"])


def test_empty_subgroup_is_warned_once_with_the_figures_that_will_be_nan(written, caplog):
    path = variant(written, lambda d: d.update(test=[e for e in d["test"] if (e["y"], e["s"]) != (1, 0)]))
    with caplog.at_level(logging.WARNING, logger="spatialspec.data.validate"):
        report = validate_datalist(path)
        validate_datalist(path)  # the same file again: validated once, warned once
        validate_datalist(path, ["test"])  # other arguments: validated again, still warned once
    expected = ("split 'test' has no entry of subgroup (y=1, s=0): robust_auroc, auroc_y0s0_y1s0, auroc_y0s1_y1s0 "
                "will be NaN")
    assert report.warnings == [expected]
    assert [r.getMessage() for r in caplog.records] == [f"datalist {path}: {expected}"]
    # training subgroups are not scored: no warning for them (rho = 1 leaves (y=1, s=0) empty there)
    assert report.subgroups["training"]["y1s0"] == 0


def test_all_problems_in_one_error(written):
    def break_it(d):
        d["training"][0]["image"] = "nowhere.png"
        d["validation"][1]["y"] = "0"
        d["test"][2].pop("s")
        d.pop("validation_extra", None)

    path = variant(written, break_it)
    with pytest.raises(DatalistError) as info:
        validate_datalist(path)
    message = str(info.value)
    assert message.startswith(f"datalist {path}: 3 problems: ")
    assert [(p.split, p.index, p.field) for p in info.value.problems] == [("training", 0, "image"),
                                                                          ("validation", 1, "y"), ("test", 2, "s")]
    for part in ("split 'training', entry 0, field 'image': file not found", "split 'validation', entry 1, field 'y'",
                 "split 'test', entry 2, field 's': missing"):
        assert part in message


def test_a_fixed_datalist_is_validated_again(written):
    path = variant(written, lambda d: d["test"][0].update(y=5))
    with pytest.raises(DatalistError):
        validate_datalist(path)
    content = json.loads(path.read_text())
    content["test"][0]["y"] = 1
    path.write_text(json.dumps(content) + " ")  # another size: the cache cannot hold the old answer
    assert validate_datalist(path).sizes["test"] == 12


def test_many_problems_are_cut_short(written):
    path = variant(written, lambda d: [e.update(image=f"missing_{i}.png") for i, e in enumerate(d["test"])])
    with pytest.raises(DatalistError) as info:
        validate_datalist(path)
    assert len(info.value.problems) == 12 and "more" not in str(info.value)
    path = variant(written, lambda d: d.update(test=[dict(e, image=f"missing_{i}.png")
                                                     for i, e in enumerate(d["test"] * 2)]))
    with pytest.raises(DatalistError, match=r"24 problems: .*; \.\.\. and 12 more$"):
        validate_datalist(path)


@pytest.mark.parametrize("suffix", [".png", ".nii.gz", ".npy"])
def test_spatial_shape_is_the_shape_monai_loads(tmp_path, suffix):
    plane = np.arange(35, dtype=np.uint8).reshape(5, 7)
    path = tmp_path / f"plane{suffix}"
    if suffix == ".png":
        Image.fromarray(plane).save(path)
    elif suffix == ".nii.gz":
        nib.save(nib.Nifti1Image(plane.astype(np.float32), np.eye(4)), str(path))
    else:
        np.save(path, plane)
    loaded = LoadImage(image_only=True, ensure_channel_first=True)(str(path))
    assert spatial_shape(path) == tuple(loaded.shape[1:])
    assert spatial_shape(tmp_path / "scan.dcm") is None  # other formats: existence only


# ------------------------------------------------------------------------------- load_split's synthetic overrides


def test_load_split_parses_synthetic_overrides_like_the_command_line():
    entries = load_split("test", synthetic={"rho": "0.9", "n_test": "5", "n": 12, "a": 3, "b": 4})
    assert len(entries) == 5 and entries[0]["image"].shape == (1, 12, 12)
    for bad, key in (({"rho": "abc"}, "rho"), ({"n_test": 2.5}, "n_test"), ({"mu_s": float("inf")}, "mu_s"),
                     ({"nonsense": 1}, "nonsense")):
        with pytest.raises(InputError, match=key):
            load_split("test", synthetic=bad)


def test_require_datalist_file(written, tmp_path):
    path, _ = written
    assert require_datalist_file(path) == path
    with pytest.raises(InputError, match=re.escape(f"--datalist {path.parent} is a folder: give its datalist file, "
                                                   f"{path}")):
        require_datalist_file(path.parent)
    with pytest.raises(InputError, match="is a folder: give the datalist file"):
        require_datalist_file(tmp_path)
    with pytest.raises(FileNotFoundError, match="--datalist: file not found"):
        require_datalist_file(tmp_path / "absent.json")
