"""Validation of a decathlon-style datalist before anything is trained or written.

A study trains for hours before it reads the test split; a datalist whose test entries lack ``y``, name a missing
file or pair an image with a mask of another size must fail before the first epoch, with every problem named. This
module is that one check, run by ``spatialspec study``, ``sweep create``, ``audit``, ``measures --datalist`` and by
every bundle at initialisation:

* the file is a JSON object and each split the command reads exists, is a list and is not empty;
* every entry is an object with ``image``, ``y`` and ``s`` (and ``label``, the abnormal mask, for the pixel-wise
  levels; ``spurious_mask`` for the audit); ``y`` and ``s`` are the integers 0 or 1;
* every file an entry names exists (relative paths resolve against the datalist's folder, as
  :func:`monai.data.load_decathlon_datalist` resolves them) and its image, mask and spurious mask have the same
  spatial shape (read from the file header: PNG/JPEG/TIFF, NIfTI, NumPy; other formats are checked for existence);
* no image is in the test split and in another split (an image in both training and validation is a warning: the
  published ISIC trap sets do that, see ``docs/datasets.md``);
* validation and test hold both classes (their AUROCs are undefined otherwise), and each empty (y, s) subgroup of
  validation or test is named in a warning with the figures that will be NaN (robust AUROC, Sec. 5.1).

All problems are collected and raised as one :class:`~spatialspec.errors.InputError` naming file, split, entry and
field.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spatialspec.errors import InputError

from .synthetic import SPLITS

__all__ = ["DatalistProblem", "DatalistReport", "DatalistError", "validate_datalist", "require_datalist_file",
           "binary_label_problem", "spatial_shape", "FILE_FIELDS", "EVALUATION_SPLITS"]

logger = logging.getLogger(__name__)

# the fields that name files, in the order their shapes are compared (every one against the image)
FILE_FIELDS = ("image", "label", "spurious_mask")
# the splits scored by AUROC: both classes needed, empty (y, s) subgroups reported
EVALUATION_SPLITS = ("validation", "test")
# how many problems the error message lists before "... and N more"
MAX_LISTED = 12
_PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".gif", ".webp")
_CUBE = ((0, 0), (0, 1), (1, 0), (1, 1))


@dataclass(frozen=True)
class DatalistProblem:
    """One defect of a datalist: where it is (``split``, ``index`` of the entry, ``field``; ``None`` where it does
    not apply) and what is wrong."""

    split: str | None
    index: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = [f"split '{self.split}'"] if self.split is not None else []
        if self.index is not None:
            where.append(f"entry {self.index}")
        if self.field is not None:
            where.append(f"field '{self.field}'")
        return f"{', '.join(where)}: {self.message}" if where else self.message


class DatalistError(InputError):
    """A datalist with problems; ``problems`` lists every one, the message names the first :data:`MAX_LISTED`
    (entries with the same defect grouped, e.g. ``entries 0-999``)."""

    def __init__(self, path: str | os.PathLike, problems: Sequence[DatalistProblem]) -> None:
        self.path = Path(path)
        self.problems = list(problems)
        groups = _group(self.problems)
        listed = "; ".join(groups[:MAX_LISTED])
        more = f"; ... and {len(groups) - MAX_LISTED} more" if len(groups) > MAX_LISTED else ""
        if len(self.problems) == 1 and self.problems[0].split is None:  # the file itself: not found, not JSON
            super().__init__(f"datalist {self.path}: {listed}")
            return
        count = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"
        super().__init__(f"datalist {self.path}: {count}: {listed}{more}")


@dataclass
class DatalistReport:
    """What :func:`validate_datalist` found in a valid datalist.

    Attributes:
        path: the datalist file (absolute).
        sizes: split -> number of entries, for the splits checked.
        subgroups: split -> ``"y{y}s{s}"`` -> number of entries (the four (y, s) subgroups of Sec. 5.1).
        warnings: the warnings logged: empty subgroups of validation and test, images shared by training and
            validation.
    """

    path: Path
    sizes: dict[str, int] = field(default_factory=dict)
    subgroups: dict[str, dict[str, int]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


_CACHE: dict[tuple, DatalistReport] = {}
_WARNED: set[str] = set()


def validate_datalist(datalist: str | os.PathLike, splits: Sequence[str] = SPLITS, *, require_label: bool = True,
                      require_spurious_mask: bool = False, check_shapes: bool = True,
                      require_both_classes: bool = True) -> DatalistReport:
    """Check everything a command will read from ``datalist`` before it trains or writes anything.

    A datalist that passed is not read again in the same process while the file is unchanged (same size and
    modification time) and the arguments are the same: a study validates once up front, its runs' bundles reuse the
    result; each warning is logged once per process.

    Args:
        datalist: path of a decathlon-style JSON file (``{"training": [...], "validation": [...], "test": [...]}``).
        splits: the splits the command reads; each must exist and hold at least one entry.
        require_label: every entry needs ``label``, the abnormal mask (the pixel-wise levels, Sec. 3.1; the
            image-level classifier and the JTT and GEORGE baselines do not).
        require_spurious_mask: every entry needs ``spurious_mask`` (the counterfactual audit).
        check_shapes: compare the spatial shape of each entry's image with its masks (from the file headers).
        require_both_classes: validation and test, when checked, must hold y = 0 and y = 1 (their AUROCs are
            undefined otherwise); ``False`` for inference, which computes no AUROC.

    Returns:
        the :class:`DatalistReport` (sizes, subgroup counts, warnings).

    Raises:
        DatalistError: (an :class:`~spatialspec.errors.InputError`) listing every problem by split, entry and
            field, or naming the file if it does not exist or is not JSON.
    """
    path = Path(datalist).expanduser().absolute()
    splits = tuple(splits)
    unknown = [s for s in splits if s not in SPLITS]
    if unknown or not splits:
        raise InputError(f"splits must name one or more of {', '.join(SPLITS)}, got {list(splits)}")
    try:
        stat = path.stat()
    except OSError:
        raise DatalistError(path, [DatalistProblem(None, None, None, "file not found")]) from None
    if not path.is_file():
        raise DatalistError(path, [DatalistProblem(None, None, None, "not a file: give the datalist file, e.g. "
                                                   f"{path / 'datalist.json'}")])
    key = (str(path), stat.st_mtime_ns, stat.st_size, splits, require_label, require_spurious_mask, check_shapes,
           require_both_classes)
    if key in _CACHE:
        return _CACHE[key]
    content = _read_json(path)
    report = DatalistReport(path=path)
    problems: list[DatalistProblem] = []
    required = ("image", "y", "s") + (("label",) if require_label else ()) + (
        ("spurious_mask",) if require_spurious_mask else ())
    images: dict[str, list[tuple[str, int]]] = {}
    for split in splits:
        entries = _split_entries(content, split, problems)
        if entries is None:
            continue
        report.sizes[split] = len(entries)
        counts = dict.fromkeys((f"y{y}s{s}" for y, s in _CUBE), 0)
        for i, entry in enumerate(entries):
            labels = _check_entry(entry, split, i, required, path.parent, check_shapes, problems)
            if labels is not None:
                counts[f"y{labels[0]}s{labels[1]}"] += 1
            if isinstance(entry, dict) and isinstance(entry.get("image"), str) and entry["image"]:
                images.setdefault(_resolve(path.parent, entry["image"]), []).append((split, i))
        report.subgroups[split] = counts
    problems += _shared_images(images, report.warnings)
    for split in EVALUATION_SPLITS:
        # classes are counted once every entry of the split has valid labels (otherwise the labels are the problem)
        if split in report.subgroups and report.sizes[split] == sum(report.subgroups[split].values()) > 0:
            _check_classes(split, report.subgroups[split], require_both_classes, problems, report.warnings)
    if problems:
        raise DatalistError(path, problems)
    for warning in report.warnings:
        if f"{path}: {warning}" not in _WARNED:
            _WARNED.add(f"{path}: {warning}")
            logger.warning(f"datalist {path}: {warning}")
    _CACHE[key] = report
    return report


def require_datalist_file(path: str | os.PathLike, option: str = "--datalist") -> Path:
    """The datalist file an option names, checked to exist; a folder (the data set's, as users often give) is
    refused with the file inside it to give instead.

    Raises:
        FileNotFoundError: naming ``option`` and the path.
        InputError: naming ``option`` when ``path`` is a folder.
    """
    file = Path(path).expanduser()
    if file.is_dir():
        inside = file / "datalist.json"
        hint = f": give its datalist file, {inside}" if inside.is_file() else ": give the datalist file (JSON)"
        raise InputError(f"{option} {path} is a folder{hint}")
    if not file.is_file():
        raise FileNotFoundError(f"{option}: file not found: {path}")
    return file


def binary_label_problem(value: Any) -> str | None:
    """Why ``value`` is not a 0/1 label (``None`` if it is): the integers 0 and 1 and JSON's ``false``/``true``
    are labels; ``"1"``, ``1.0``, ``2`` and ``null`` are not."""
    if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
        return None
    return f"must be the integer 0 or 1, got {value!r}" + (" (a string)" if isinstance(value, str) else "")


def spatial_shape(path: str | os.PathLike) -> tuple[int, ...] | None:
    """The spatial shape MONAI's ``LoadImage`` gives the 2-D image at ``path``, read from its header: ``(W, H)``
    for PIL formats (MONAI's ``PILReader`` transposes), the first two axes of a NIfTI volume, the array's shape for
    NumPy (MONAI adds the channel axis). ``None`` for other formats (DICOM and the rest: only existence is
    checked).

    Raises:
        OSError: or another reader error if the file cannot be read as its format.
    """
    name = str(path).lower()
    if name.endswith(_PIL_SUFFIXES):
        from PIL import Image

        with Image.open(path) as image:
            return tuple(image.size)
    if name.endswith((".nii", ".nii.gz")):
        import nibabel as nib

        return tuple(int(n) for n in nib.load(str(path)).shape[:2])
    if name.endswith(".npy"):
        import numpy as np

        return tuple(int(n) for n in np.load(path, mmap_mode="r").shape)
    return None


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            content = json.load(f)
    except json.JSONDecodeError as e:
        raise DatalistError(path, [DatalistProblem(None, None, None, f"not valid JSON: {e}")]) from None
    except (OSError, UnicodeDecodeError) as e:
        raise DatalistError(path, [DatalistProblem(None, None, None, f"cannot read it: {e}")]) from None
    if not isinstance(content, dict):
        raise DatalistError(path, [DatalistProblem(None, None, None, "must be a JSON object with one list per split "
                                                   f"({', '.join(SPLITS)}), got a {type(content).__name__}")])
    return content


def _split_entries(content: dict, split: str, problems: list[DatalistProblem]) -> list | None:
    if split not in content:
        present = [s for s in SPLITS if s in content]
        problems.append(DatalistProblem(split, None, None, "missing (the datalist has "
                                        f"{', '.join(repr(s) for s in present) if present else 'no split'})"))
        return None
    entries = content[split]
    if not isinstance(entries, list):
        problems.append(DatalistProblem(split, None, None, f"must be a list of entries, got a "
                                        f"{type(entries).__name__}"))
        return None
    if not entries:
        problems.append(DatalistProblem(split, None, None, "is empty"))
    return entries


def _resolve(folder: Path, value: str) -> str:
    """A datalist path as MONAI resolves it: relative to the datalist's folder."""
    return os.path.normpath(os.path.join(folder, value))


def _check_entry(entry: Any, split: str, i: int, required: tuple[str, ...], folder: Path, check_shapes: bool,
                 problems: list[DatalistProblem]) -> tuple[int, int] | None:
    """Append the entry's problems; returns its (y, s) when both are valid labels."""
    if not isinstance(entry, dict):
        problems.append(DatalistProblem(split, i, None, f"must be an object with image, y and s, got "
                                        f"{type(entry).__name__} {entry!r:.60}"))
        return None
    for key in required:
        if key not in entry:
            problems.append(DatalistProblem(split, i, key, "missing"))
    labels = []
    for key in ("y", "s"):
        if key in entry:
            problem = binary_label_problem(entry[key])
            if problem:
                problems.append(DatalistProblem(split, i, key, problem))
            else:
                labels.append(int(entry[key]))
    shapes: dict[str, tuple[int, ...]] = {}
    for key in FILE_FIELDS:
        if key not in entry:
            continue
        value = entry[key]
        if not isinstance(value, str) or not value:
            problems.append(DatalistProblem(split, i, key, f"must be a file path, got {value!r:.60}"))
            continue
        file = _resolve(folder, value)
        if not os.path.isfile(file):
            problems.append(DatalistProblem(split, i, key, f"file not found: {file}"))
            continue
        if check_shapes:
            try:
                shape = spatial_shape(file)
            except Exception as e:  # noqa: BLE001 - any reader error means the file is not an image of its format
                problems.append(DatalistProblem(split, i, key, f"cannot read {file}: {type(e).__name__}: {e}"))
                continue
            if shape is not None:
                shapes[key] = shape
    if "image" in shapes:
        for key, shape in shapes.items():
            if key != "image" and shape != shapes["image"]:
                problems.append(DatalistProblem(split, i, key, f"shape {_fmt_shape(shape)} differs from the image's "
                                                f"{_fmt_shape(shapes['image'])}"))
    return (labels[0], labels[1]) if len(labels) == 2 else None


def _fmt_shape(shape: tuple[int, ...]) -> str:
    return " x ".join(str(n) for n in shape)


def _shared_images(images: dict[str, list[tuple[str, int]]], warnings: list[str]) -> list[DatalistProblem]:
    """An image in the test split and another split is an error (test figures would score training or
    model-selection images); training and validation sharing images is a warning."""
    problems = []
    shared_val = 0
    for file, places in images.items():
        splits = {split for split, _ in places}
        if len(splits) < 2:
            continue
        if "test" in splits:
            others = ", ".join(f"'{s}' entry {i}" for s, i in places if s != "test")
            first = next(i for s, i in places if s == "test")
            problems.append(DatalistProblem("test", first, "image", f"{file} is also in {others}"))
        else:
            shared_val += 1
    if shared_val:
        warnings.append(f"{shared_val} image(s) are in both 'training' and 'validation': validation figures (and "
                        "the checkpoint chosen on them) are then training figures")
    return problems


def _check_classes(split: str, counts: dict[str, int], require_both: bool, problems: list[DatalistProblem],
                   warnings: list[str]) -> None:
    from spatialspec.metrics.robust_auroc import PAIR_NAMES, PAIRS

    by_y = [counts[f"y{y}s0"] + counts[f"y{y}s1"] for y in (0, 1)]
    if require_both and 0 in by_y:
        present = 1 if by_y[1] else 0
        problems.append(DatalistProblem(split, None, "y", f"holds only y = {present} ({by_y[present]} entries): "
                                        "its AUROCs need both classes"))
        return
    for y, s in _CUBE:
        if counts[f"y{y}s{s}"]:
            continue
        figures = (["robust_auroc"] if y != s else []) + [name for name, pair in zip(PAIR_NAMES, PAIRS)
                                                          if (y, s) in pair]
        warnings.append(f"split '{split}' has no entry of subgroup (y={y}, s={s}): {', '.join(figures)} will be NaN")


def _group(problems: Sequence[DatalistProblem]) -> list[str]:
    """Problems with the same split, field and message (``missing``, ``must be the integer 0 or 1, got '1'``)
    joined into one item listing their entries as ranges."""
    order: list[tuple] = []
    indices: dict[tuple, list[int]] = {}
    for p in problems:
        key = (p.split, p.field, p.message, p.index is None)
        if key not in indices:
            order.append(key)
            indices[key] = []
        if p.index is not None:
            indices[key].append(p.index)
    items = []
    for key in order:
        split, fld, message, no_index = key
        where = [f"split '{split}'"] if split is not None else []
        if not no_index:
            idx = indices[key]
            where.append(f"entry {idx[0]}" if len(idx) == 1 else f"entries {_ranges(idx)} ({len(idx)})")
        if fld is not None:
            where.append(f"field '{fld}'")
        items.append(f"{', '.join(where)}: {message}" if where else message)
    return items


def _ranges(indices: Sequence[int]) -> str:
    parts, start, prev = [], indices[0], indices[0]
    for i in [*indices[1:], None]:
        if i is not None and i == prev + 1:
            prev = i
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if i is not None:
            start = prev = i
    return ", ".join(parts)
