"""The SIIM-ACR pneumothorax data set with the chest-tube labels of Saab et al. (Sec. 5, App. A.1) as a datalist.

Source layout (the SIIM-ACR challenge release; another CSV with the same columns can be passed as ``rle_csv``)::

    ROOT/dicom-images-train/<study>/<series>/<SOPInstanceUID>.dcm   8-bit 1024 x 1024 MONOCHROME2 DICOM
    ROOT/train-rle.csv                                                ImageId, EncodedPixels

Header and values of ``train-rle.csv`` may carry a leading space (``" EncodedPixels"``, ``" -1"``). ``-1`` means no
pneumothorax; several rows for one ImageId are several instances and the mask is their union (the authors' code keeps
the first row only, which drops instances). The run-length encoding is a sequence of (start, length) pairs over the
column-major flattening of the mask, each start counted from the end of the previous run (the first from pixel 0):
:func:`rle_decode` and :func:`rle_encode` are exact inverses and vectorised.

The chest tube is the spurious feature s. Its labels (``cxr_tube_dict.pkl``, SOPInstanceUID -> bool, 1,951 images)
are converted once to CSV by :func:`tubes_pickle_to_csv` (restricted unpickler, nothing executed);
:func:`write_siim_datalist` reads that CSV, decodes the masks, reads the DICOMs
(:func:`spatialspec.data.dicom.read_dicom`), resizes images and masks, and writes PNGs plus a decathlon-style
``datalist.json``.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spatialspec.atomic import atomic_write, write_json_atomic

from .dicom import read_dicom
from .export import StagedOutput, map_threads, resize_image, resize_mask, stratified_take, summarise_problems
from .rle import parse_rle, rle_decode, rle_encode
from .safe_pickle import load_label_dict
from .tables import read_csv_rows

__all__ = ["rle_decode", "rle_encode", "read_rle_csv", "read_tubes_csv", "tubes_pickle_to_csv", "siim_split",
           "find_dicoms", "read_dicom", "resize_image", "resize_mask", "write_siim_datalist", "SIIM_SPLIT_MODES",
           "PAPER_SIIM_SIZES", "UNKNOWN_TUBE"]

SIIM_SPLIT_MODES = ("official", "random")
# train / validation / test sizes of Sec. 5 (12,047 images, 1,951 of them with a chest-tube label)
PAPER_SIIM_SIZES = {"training": 10096, "validation": 951, "test": 1000}
# the ``tube`` value of an image without a chest-tube label (every training image of the official split)
UNKNOWN_TUBE = -1
_SPLIT_NAMES = {"val": "validation", "validation": "validation", "test": "test"}


# --------------------------------------------------------------------------------------------------- CSV files
def read_rle_csv(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read ``train-rle.csv``: ImageId -> its EncodedPixels values (one per row; several rows are several instances).

    Leading spaces in the header and the values are stripped (``" EncodedPixels"``, ``" -1"``).

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: naming the file (and line) for a missing column, a row with the wrong number of fields or an
            empty ImageId or EncodedPixels.
    """
    path = Path(path).expanduser()
    _, rows = read_csv_rows(path, ("ImageId", "EncodedPixels"), "RLE file")
    out: dict[str, list[str]] = {}
    for line, row in rows:
        image_id, rle = row["ImageId"], row["EncodedPixels"]
        if not image_id:
            raise ValueError(f"RLE file {path}, line {line}: empty ImageId")
        if not rle:
            raise ValueError(f"RLE file {path}, line {line}: ImageId {image_id} has an empty EncodedPixels "
                             "(-1 marks an image without pneumothorax)")
        out.setdefault(image_id, []).append(rle)
    return out


def read_tubes_csv(path: str | os.PathLike) -> dict[str, tuple[int, str | None]]:
    """Read the chest-tube labels CSV written by :func:`tubes_pickle_to_csv`.

    Columns: ``ImageId``, ``tube`` (0/1, also ``true``/``false``) and optionally ``split`` (``val`` or ``test``: the
    authors' division of the labelled images, when known).

    Returns:
        ImageId -> (tube, split or ``None``).

    Raises:
        ValueError: naming the file and line for a missing column, a duplicated ImageId, a tube value other than
            0/1/true/false or a split other than val/test.
    """
    path = Path(path).expanduser()
    if path.suffix.lower() in (".pkl", ".pickle"):
        raise ValueError(f"tubes file {path} looks like a pickle: convert it first with "
                         "`spatialspec data siim-tubes --pickle FILE --out tubes.csv`")
    names, rows = read_csv_rows(path, ("ImageId", "tube"), "tubes file")
    has_split = "split" in names
    out: dict[str, tuple[int, str | None]] = {}
    for line, row in rows:
        image_id = row["ImageId"]
        if not image_id:
            raise ValueError(f"tubes file {path}, line {line}: empty ImageId")
        if image_id in out:
            raise ValueError(f"tubes file {path}, line {line}: ImageId {image_id} is listed twice")
        value = row["tube"].lower()
        if value not in ("0", "1", "true", "false"):
            raise ValueError(f"tubes file {path}, line {line}: tube of {image_id} must be 0 or 1, got {row['tube']!r}")
        split = None
        if has_split and row["split"]:
            split = _SPLIT_NAMES.get(row["split"].lower())
            if split is None:
                raise ValueError(f"tubes file {path}, line {line}: split of {image_id} must be val or test, got "
                                 f"{row['split']!r}")
        out[image_id] = (int(value in ("1", "true")), split)
    splits = {v[1] for v in out.values()}
    if None in splits and len(splits) > 1:
        raise ValueError(f"tubes file {path}: the split column is filled for some images only")
    return out


def tubes_pickle_to_csv(pickle_path: str | os.PathLike, out: str | os.PathLike,
                        test_pickle: str | os.PathLike | None = None) -> Path:
    """Convert the released chest-tube labels (``cxr_tube_dict.pkl``, SOPInstanceUID -> bool) to ``ImageId,tube``
    CSV, loading the pickle with a restricted unpickler (nothing in it is imported or executed).

    The authors' code reads two such dicts, ``cxr_tube_dict_train.pkl`` (their validation images) and
    ``cxr_tube_dict_test.pkl`` (their test images); the public file is one dict without that division. Given
    ``test_pickle``, the CSV gets a ``split`` column: ``val`` for the images of ``pickle_path``, ``test`` for those of
    ``test_pickle``, which the official split of :func:`siim_split` then follows.

    Returns:
        the path of the CSV (written atomically).

    Raises:
        ValueError: naming the file if a pickle is not a plain dict of str -> bool (see
            :func:`~spatialspec.data.safe_pickle.load_label_dict`), or if an ImageId is in both pickles.
    """
    labels = load_label_dict(pickle_path)
    rows = [(k, int(v), "val") for k, v in labels.items()]
    if test_pickle is not None:
        test = load_label_dict(test_pickle)
        both = sorted(set(labels) & set(test))
        if both:
            raise ValueError(f"{len(both)} ImageId(s) are in both {pickle_path} and {test_pickle}, e.g. {both[0]}")
        rows += [(k, int(v), "test") for k, v in test.items()]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["ImageId", "tube", "split"] if test_pickle is not None else ["ImageId", "tube"])
    for image_id, tube, split in rows:
        writer.writerow([image_id, tube, split] if test_pickle is not None else [image_id, tube])
    return atomic_write(Path(out).expanduser(), buffer.getvalue())


# --------------------------------------------------------------------------------------------------- splits


def siim_split(image_ids: Sequence[str], y: Sequence[int], tubes: Mapping[str, tuple[int, str | None]],
               mode: str = "official", seed: int = 0, n_val: int | None = None, n_test: int | None = None
               ) -> dict[str, str]:
    """Assign every image to ``training``, ``validation`` or ``test`` (Sec. 5).

    Only images with a chest-tube label can be scored by the robust AUROC (it needs s), so validation and test are
    drawn from them in both modes; the rest is training.

    * ``official`` (the authors' code): every tube-labelled image is in validation or test, every other image in
      training. Their division follows the tubes file's ``split`` column when it has one; the public single pickle
      does not record it, and then it is drawn at random with ``seed``, stratified by (y, tube), with the paper's
      proportions (1,000 test images of 1,951), i.e. exactly as the ``random`` mode with its default sizes.
    * ``random`` (Sec. 5: "randomly split ... while preserving class balance"): ``n_test`` and ``n_val`` images are
      drawn from the tube-labelled images with ``seed``, stratified by (y, tube); the defaults use all of them in the
      paper's proportions (with the full data set: 951 validation, 1,000 test, 10,096 training images). Labelled
      images left over go to training.

    Args:
        image_ids: the images to split.
        y: their pneumothorax labels (0/1).
        tubes: :func:`read_tubes_csv`'s mapping (ImageIds outside ``image_ids`` are ignored).
        mode: ``official`` or ``random``.
        seed: seed of the random draws.
        n_val: validation size (``random`` mode only).
        n_test: test size (``random`` mode only).

    Returns:
        ImageId -> split name.

    Raises:
        ValueError: for an unknown mode, sizes given in the official mode, no tube-labelled image, or sizes that
            exceed the number of tube-labelled images.
    """
    if mode not in SIIM_SPLIT_MODES:
        raise ValueError(f"split mode must be one of {', '.join(SIIM_SPLIT_MODES)}, got {mode!r}")
    ids = [str(i) for i in image_ids]
    labels = np.asarray(y, dtype=np.int64).reshape(-1)
    if labels.size != len(ids):
        raise ValueError(f"image_ids and y must have the same length, got {len(ids)} and {labels.size}")
    if len(set(ids)) != len(ids):
        raise ValueError("image_ids holds duplicates")
    assignment = {i: "training" for i in ids}
    labelled = np.array([k for k, i in enumerate(ids) if i in tubes], dtype=np.int64)
    if labelled.size == 0:
        raise ValueError("no image has a chest-tube label: validation and test need them for the robust AUROC")
    tube = np.array([tubes[i][0] if i in tubes else -1 for i in ids], dtype=np.int64)
    strata = labels * 3 + tube + 1
    if mode == "official" and (n_val is not None or n_test is not None):
        raise ValueError("n_val and n_test apply to the random split only; the official split uses every "
                         "tube-labelled image")
    known = {tubes[ids[k]][1] for k in labelled}
    if mode == "official" and None not in known:
        for k in labelled:
            assignment[ids[k]] = tubes[ids[k]][1]  # type: ignore[assignment]
        return assignment
    total = PAPER_SIIM_SIZES["test"] + PAPER_SIIM_SIZES["validation"]
    n_test = round(labelled.size * PAPER_SIIM_SIZES["test"] / total) if n_test is None else int(n_test)
    n_val = labelled.size - n_test if n_val is None else int(n_val)
    if n_val < 0 or n_test < 0 or n_val + n_test > labelled.size:
        raise ValueError(f"n_val={n_val} and n_test={n_test} must be >= 0 and add up to at most the "
                         f"{labelled.size} images with a chest-tube label (only those can be scored)")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 20220712]))
    test = stratified_take(labelled, strata, n_test, rng)
    val = stratified_take(np.setdiff1d(labelled, test), strata, n_val, rng)
    for k in test:
        assignment[ids[k]] = "test"
    for k in val:
        assignment[ids[k]] = "validation"
    return assignment


# --------------------------------------------------------------------------------------------------- datalist
def find_dicoms(root: str | os.PathLike) -> dict[str, Path]:
    """Every ``ROOT/dicom-images-train/<dir>/<dir>/<SOPInstanceUID>.dcm``, as SOPInstanceUID -> path.

    Raises:
        FileNotFoundError: if ``ROOT/dicom-images-train`` does not exist.
        ValueError: if two files have the same SOPInstanceUID.
    """
    folder = Path(root).expanduser() / "dicom-images-train"
    if not folder.is_dir():
        raise FileNotFoundError(f"DICOM folder not found: {folder} (expected ROOT/dicom-images-train/*/*/*.dcm)")
    found: dict[str, Path] = {}
    for path in sorted(folder.glob("*/*/*.dcm")):
        if path.stem in found:
            raise ValueError(f"two DICOM files for ImageId {path.stem}: {found[path.stem]} and {path}")
        found[path.stem] = path
    return found


def _union_mask(rles: Sequence[str], height: int, width: int, image_id: str) -> np.ndarray:
    mask = np.zeros((height, width), dtype=bool)
    for rle in rles:
        mask |= rle_decode(rle, height, width, image_id=image_id)
    return mask


def write_siim_datalist(root: str | os.PathLike, out_dir: str | os.PathLike, tubes: str | os.PathLike | None = None,
                        size: int | None = 512, split: str = "official", seed: int = 0, n_val: int | None = None,
                        n_test: int | None = None, skip_bad: bool = False, rle_csv: str | os.PathLike | None = None,
                        workers: int = 1) -> Path:
    """Write SIIM-ACR as 8-bit PNG images and masks plus ``out_dir/datalist.json`` (Sec. 5, App. A.1).

    Every ImageId of ``train-rle.csv`` is read from its DICOM through MONAI ``LoadImage`` (``PydicomReader``), its
    instances are decoded and united into one mask, the image is resized by area averaging and the mask by
    any-positive pooling (the authors' max-pooling) to ``size x size``, and both are written as PNG
    (``images/<ImageId>.png``, ``masks/<ImageId>.png`` with 0/255). Entries: ``id``, ``image``, ``label`` (the
    pneumothorax mask), ``y`` (pneumothorax), ``tube`` (1/0, or -1 when the image has no chest-tube label) and ``s``
    (the spurious label for the robust AUROC: the tube; 0 for images without a tube label, which are all in training
    where s is not used, because :func:`~spatialspec.data.load_split` accepts only 0/1). Paths are relative to
    ``out_dir``. PNGs are stored upright; MONAI's PILReader loads images and masks alike as ``W x H``, so they stay
    aligned.

    Nothing is written unless every input is valid: all DICOMs are read first (into a hidden staging folder), then
    moved into place, and the datalist is written last, atomically.

    Args:
        root: the data folder (``dicom-images-train/``, ``train-rle.csv``).
        out_dir: the output folder.
        tubes: the chest-tube labels CSV (:func:`tubes_pickle_to_csv`); required, since validation and test are the
            tube-labelled images.
        size: output side in pixels (the authors use 512); ``None`` or 0 keeps the DICOM size.
        split: ``official`` or ``random`` (:func:`siim_split`).
        seed: seed of the random draws of :func:`siim_split`.
        n_val: validation size of the random split.
        n_test: test size of the random split.
        skip_bad: skip, with a warning, images whose DICOM is missing or cannot be read, and tube labels of images
            that are not in the data, instead of failing.
        rle_csv: the run-length CSV (default ``root/train-rle.csv``).
        workers: threads reading and writing images.

    Returns:
        the path of ``datalist.json``.

    Raises:
        FileNotFoundError: for a missing folder or CSV.
        ValueError: for malformed CSVs or run-length encodings (naming the file, line or ImageId), and, unless
            ``skip_bad``, listing every unreadable DICOM, every ImageId without a DICOM and every tube label of an
            unknown image.
    """
    root = Path(root).expanduser()
    out = Path(out_dir).expanduser().resolve()
    if tubes is None:
        raise ValueError("tubes: the chest-tube labels CSV is required (validation and test are the tube-labelled "
                         "images); convert cxr_tube_dict.pkl with `spatialspec data siim-tubes`")
    if size is not None and size != 0 and int(size) < 1:
        raise ValueError(f"size must be >= 1 (or 0 to keep the DICOM size), got {size}")
    if split not in SIIM_SPLIT_MODES:
        raise ValueError(f"split must be one of {', '.join(SIIM_SPLIT_MODES)}, got {split!r}")
    rle_path = Path(rle_csv).expanduser() if rle_csv is not None else root / "train-rle.csv"
    rles = read_rle_csv(rle_path)
    tube_labels = read_tubes_csv(tubes)
    dicoms = find_dicoms(root)

    problems: list[str] = []
    missing = [i for i in rles if i not in dicoms]
    problems += [f"ImageId {i} of {rle_path.name}: no DICOM file {i}.dcm under {root / 'dicom-images-train'}"
                 for i in missing]
    unknown = [i for i in tube_labels if i not in rles]
    problems += [f"ImageId {i} of the tubes file {tubes}: not in {rle_path.name}" for i in unknown]
    unlabelled_dicoms = [i for i in dicoms if i not in rles]
    if unlabelled_dicoms:
        warnings.warn(f"{len(unlabelled_dicoms)} DICOM file(s) have no row in {rle_path.name} and are left out, e.g. "
                      f"{dicoms[unlabelled_dicoms[0]]}", RuntimeWarning, stacklevel=2)
    candidates = [i for i in rles if i in dicoms]
    # check every run-length encoding's syntax before reading any image (sizes are checked once the image is read)
    for image_id in candidates:
        for rle in rles[image_id]:
            parse_rle(rle, image_id)

    side = None if not size else int(size)
    staging = StagedOutput(out)
    try:
        def process(image_id: str) -> tuple[str, int, str | None]:
            try:
                image = read_dicom(dicoms[image_id])
            except ValueError as e:
                return image_id, -1, str(e)
            mask = _union_mask(rles[image_id], *image.shape, image_id=image_id)
            positive = any(r.strip() != "-1" for r in rles[image_id])
            if positive and not mask.any():
                raise ValueError(f"ImageId {image_id}: its run-length encoding marks a pneumothorax but no pixel")
            if side is not None:
                image, mask = resize_image(image, side), resize_mask(mask, side)
            staging.write_png(f"images/{image_id}.png", image)
            staging.write_png(f"masks/{image_id}.png", mask.astype(np.uint8) * 255)
            return image_id, int(positive), None

        with warnings.catch_warnings():
            # set once for every worker thread (catch_warnings inside threads is not thread-safe)
            warnings.filterwarnings("ignore", message="PydicomReader: ImageOrientationPatient")
            results = map_threads(candidates, process, workers)
        problems += [error for _, _, error in results if error is not None]
        if problems and not skip_bad:
            raise ValueError(f"{len(problems)} problem(s) in the SIIM-ACR data (nothing was written; --skip-bad / "
                             f"skip_bad=True skips these images):{summarise_problems(problems)}")
        if problems:
            warnings.warn(f"skipped {len(problems)} image(s) or label(s):{summarise_problems(problems)}",
                          RuntimeWarning,
                          stacklevel=2)
        good = [(i, y) for i, y, error in results if error is None]
        if not good:
            raise ValueError(f"no usable image in {root}")
        ids = [i for i, _ in good]
        ys = [y for _, y in good]
        assignment = siim_split(ids, ys, tube_labels, mode=split, seed=seed, n_val=n_val, n_test=n_test)
        staging.commit([f"{d}/{i}.png" for i in ids for d in ("images", "masks")])
    except BaseException:
        staging.abort()
        raise

    content: dict[str, Any] = {
        "name": "spatialspec-siim-acr",
        "description": "SIIM-ACR pneumothorax with chest-tube labels (Saab et al. 2022, Sec. 5)",
        "source": str(root), "tubes": str(Path(tubes).expanduser().resolve()), "size": side, "split": split,
        "seed": seed, "format": "png", "spurious": "tube",
        "notes": ["tube is -1 (unknown) for images without a chest-tube label; their s is 0 as a placeholder (they "
                  "are in training, where s is not used); robust AUROC needs tube labels, so validation and test "
                  "hold only tube-labelled images",
                  "masks are the union of every instance of an ImageId; PNGs are upright, MONAI loads them W x H"],
        "skipped": problems,
        "training": [], "validation": [], "test": [],
    }
    for image_id, y in good:
        tube = tube_labels[image_id][0] if image_id in tube_labels else UNKNOWN_TUBE
        content[assignment[image_id]].append({
            "id": image_id, "image": f"images/{image_id}.png", "label": f"masks/{image_id}.png", "y": y,
            "tube": tube, "s": max(tube, 0),
        })
    content["counts"] = {k: len(content[k]) for k in ("training", "validation", "test")}
    return write_json_atomic(out / "datalist.json", content)

