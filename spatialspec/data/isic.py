"""ISIC 2018 with the trap sets of Bissoto et al. (2020), as used by Saab et al. (Sec. 5, 5.1), as a datalist.

Source layout::

    ROOT/ISIC2018_Task1-2_Training_Input/<id>.jpg
    ROOT/ISIC2018_Task1_Training_GroundTruth/<id>_segmentation.png          lesion mask, 0/255
    TRAP/isic_annotated_{train,val,test}{1..5}.csv

Trap-set header: ``,image,dark_corner,hair,gel_border,gel_bubble,ruler,ink,patches,vasc,label,label_string`` (the
first column an unnamed index, ``image`` like ``ISIC_0000000.png``, artifact columns 0/1, ``label`` 0 benign / 1
malignant). The training sets amplify the correlation of seven artifacts with the label and the test sets reverse
it, so the paper reports the overall test AUROC as the robust AUROC for ISIC (Sec. 5: "the robust and overall AUROC
are equivalent for the ISIC dataset"); :func:`spurious_labels` encodes that as ``s`` (``trap`` rule) so the
project's robust-AUROC evaluation reproduces it, or uses one artifact (or any) as ``s`` for subgroup analyses.

In the published files every validation image is also a training image: :func:`isic_splits` warns about it and can
carve a seeded, class-stratified validation set out of the training set instead.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from spatialspec.atomic import write_json_atomic

from .export import StagedOutput, map_threads, resize_image, resize_mask, stratified_take, summarise_problems
from .tables import read_csv_rows

__all__ = [
    "ISIC_ARTIFACTS",
    "TRAP_SPLIT_FILES",
    "SPURIOUS_RULES",
    "read_trap_set",
    "isic_splits",
    "spurious_labels",
    "write_isic_datalist",
]

# the seven artifacts of Sec. 5 (Bissoto et al.'s annotations), in the trap sets' column order
ISIC_ARTIFACTS = ("dark_corner", "hair", "gel_border", "gel_bubble", "ruler", "ink", "patches")
# datalist split -> trap-set file stem
TRAP_SPLIT_FILES = {"training": "train", "validation": "val", "test": "test"}
SPURIOUS_RULES = ("trap", "any", *ISIC_ARTIFACTS)
_IMAGE_DIR = "ISIC2018_Task1-2_Training_Input"
_MASK_DIR = "ISIC2018_Task1_Training_GroundTruth"
_FLAG_VALUES = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1}


def read_trap_set(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read one trap-set CSV of Bissoto et al.

    Returns:
        one dict per row, in file order: ``id`` (the image name without extension, e.g. ``ISIC_0000000``), ``y``
        (``label``), the seven artifact flags of :data:`ISIC_ARTIFACTS` as ints, and ``vasc`` and ``label_string``
        when the file has them.

    Raises:
        FileNotFoundError: if the file does not exist.
        ValueError: naming the file and line for a missing column, an empty image name, or a flag or label that is
            not 0/1.
    """
    path = Path(path).expanduser()
    names, table = read_csv_rows(path, ("image", *ISIC_ARTIFACTS, "label"), "trap-set file")
    flags = [c for c in (*ISIC_ARTIFACTS, "vasc") if c in names]
    rows = []
    for line, raw in table:
        name = raw["image"]
        if not name:
            raise ValueError(f"trap-set file {path}, line {line}: empty image name")
        row: dict[str, Any] = {"id": Path(name).stem}
        for key in ("label", *flags):
            value = _FLAG_VALUES.get(raw[key].lower())
            if value is None:
                raise ValueError(f"trap-set file {path}, line {line} ({name}): column '{key}' must be 0 or 1, "
                                 f"got {raw[key]!r}")
            row["y" if key == "label" else key] = value
        if "label_string" in raw:
            row["label_string"] = raw["label_string"]
        rows.append(row)
    return rows


def isic_splits(trap_dir: str | os.PathLike, seed: int = 1, val_from_train: float | None = None, val_seed: int = 0
                ) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """The training, validation and test rows of trap set ``seed`` (1..5), and the warnings about them.

    Args:
        trap_dir: the folder of ``isic_annotated_{train,val,test}{seed}.csv``.
        seed: the trap-set index, 1 to 5.
        val_from_train: if given, the published validation file is not used; this fraction of the (distinct)
            training images, drawn with ``val_seed`` and stratified by label, becomes the validation set and leaves
            the training set.
        val_seed: seed of that draw.

    Returns:
        ``({"training": rows, "validation": rows, "test": rows}, warnings)``; the warnings are also issued as
        ``UserWarning``: the published validation images that are training images, test images that are training
        images.

    Raises:
        ValueError: for a seed outside 1..5, a fraction outside (0, 1), an image whose label differs between files,
            or a carved validation set that would be empty.
    """
    if isinstance(seed, bool) or int(seed) != seed or not 1 <= int(seed) <= 5:
        raise ValueError(f"trap-set seed must be 1, 2, 3, 4 or 5, got {seed!r}")
    if val_from_train is not None and not 0.0 < float(val_from_train) < 1.0:
        raise ValueError(f"val_from_train must be a fraction in (0, 1), got {val_from_train!r}")
    folder = Path(trap_dir).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"trap-set folder not found: {folder}")
    splits = {split: read_trap_set(folder / f"isic_annotated_{stem}{int(seed)}.csv")
              for split, stem in TRAP_SPLIT_FILES.items()
              if not (split == "validation" and val_from_train is not None)}
    labels: dict[str, int] = {}
    for split, rows in splits.items():
        for row in rows:
            if labels.setdefault(row["id"], row["y"]) != row["y"]:
                raise ValueError(f"trap set {seed}: image {row['id']} has label {row['y']} in the {split} file and "
                                 f"{labels[row['id']]} in another")
    notes: list[str] = []
    train_ids = {r["id"] for r in splits["training"]}
    if val_from_train is None:
        overlap = {r["id"] for r in splits["validation"]} & train_ids
        if overlap:
            notes.append(f"trap set {seed}: {len(overlap)} of the {len({r['id'] for r in splits['validation']})} "
                         "validation images are also training images (as in the published files); validation "
                         "figures are then training figures: use val_from_train (--val-from-train) to carve a "
                         "disjoint validation set out of the training set")
    else:
        distinct = sorted(train_ids)
        y = np.array([labels[i] for i in distinct], dtype=np.int64)
        n_val = int(round(float(val_from_train) * len(distinct)))
        if n_val < 1 or n_val >= len(distinct):
            raise ValueError(f"val_from_train={val_from_train} of {len(distinct)} training images leaves an empty "
                             "validation or training set")
        rng = np.random.default_rng(np.random.SeedSequence([int(val_seed), int(seed), 2018]))
        chosen = {distinct[k] for k in stratified_take(np.arange(len(distinct)), y, n_val, rng)}
        splits["validation"] = [r for r in splits["training"] if r["id"] in chosen]
        splits["training"] = [r for r in splits["training"] if r["id"] not in chosen]
        train_ids -= chosen
    leaked = {r["id"] for r in splits["test"]} & train_ids
    if leaked:
        notes.append(f"trap set {seed}: {len(leaked)} test image(s) are also training images, e.g. {sorted(leaked)[0]}")
    for note in notes:
        warnings.warn(note, UserWarning, stacklevel=2)
    return {split: splits[split] for split in TRAP_SPLIT_FILES}, notes


def spurious_labels(rows: Sequence[Mapping[str, Any]], split: str, rule: str = "trap") -> list[int]:
    """The spurious label ``s`` of each row, for the robust AUROC of :mod:`spatialspec.metrics`.

    * ``trap`` (the paper, Sec. 5): the trap test set reverses the training correlations, so every test image
      counts as breaking them: ``s = 1 - y`` on ``test`` (the robust subset y != s is the whole test set and the
      robust AUROC equals the overall AUROC, as the paper reports), ``s = y`` on ``training`` and ``validation``
      (drawn from the training distribution, where the correlations hold; their robust subset is empty, NaN).
    * ``any``: ``s = 1`` if the image shows any of the seven artifacts.
    * one of :data:`ISIC_ARTIFACTS`: that artifact's flag.
    """
    if rule not in SPURIOUS_RULES:
        raise ValueError(f"spurious rule must be one of {', '.join(SPURIOUS_RULES)}, got {rule!r}")
    if split not in TRAP_SPLIT_FILES:
        raise ValueError(f"split must be one of {', '.join(TRAP_SPLIT_FILES)}, got {split!r}")
    if rule == "trap":
        return [1 - int(r["y"]) if split == "test" else int(r["y"]) for r in rows]
    if rule == "any":
        return [int(any(r[a] for a in ISIC_ARTIFACTS)) for r in rows]
    return [int(r[rule]) for r in rows]


def _read_pair(root: Path, image_id: str) -> tuple[np.ndarray, np.ndarray]:
    """The RGB image and the boolean lesion mask of ``image_id`` (``ValueError`` naming the file if unreadable)."""
    from PIL import Image

    image_path = root / _IMAGE_DIR / f"{image_id}.jpg"
    mask_path = root / _MASK_DIR / f"{image_id}_segmentation.png"
    arrays = []
    for path, mode in ((image_path, "RGB"), (mask_path, "L")):
        if not path.is_file():
            raise ValueError(f"image {image_id}: file not found: {path}")
        try:
            with Image.open(path) as opened:
                arrays.append(np.asarray(opened.convert(mode)))
        except Exception as e:  # PIL raises several types for broken files
            raise ValueError(f"image {image_id}: cannot read {path}: {type(e).__name__}: {e}") from None
    image, mask = arrays
    if image.shape[:2] != mask.shape:
        raise ValueError(f"image {image_id}: the image is {image.shape[0]} x {image.shape[1]} but its mask "
                         f"{mask_path} is {mask.shape[0]} x {mask.shape[1]}")
    return image, mask > 127


def write_isic_datalist(root: str | os.PathLike, trap_dir: str | os.PathLike, out_dir: str | os.PathLike,
                        seed: int = 1, size: int | None = 512, val_from_train: float | None = None,
                        val_seed: int = 0, spurious: str = "trap", workers: int = 1) -> Path:
    """Write ISIC 2018 with trap set ``seed`` as PNG files plus ``out_dir/datalist.json`` (Sec. 5).

    Each image is written once (``images/<id>.png``, resized by area averaging to ``size x size`` like the authors'
    512 x 512 resize; with ``size`` 0 or ``None`` the entry points at the original JPEG instead), with its lesion mask
    (``lesions/<id>.png``) and its abnormality mask (``masks/<id>.png``: the lesion if malignant, empty if benign, so
    that y = any(mask) as the project's levels expect; the authors' code encodes the same as lesion x (label + 1)),
    both resized by any-positive pooling and stored 0/255. Entries hold ``id``, ``image``, ``label`` (the abnormality
    mask), ``lesion``, ``y``, ``s`` (:func:`spurious_labels`), the seven artifact flags, ``vasc`` and
    ``label_string`` when present. Paths are relative to ``out_dir`` (the originals' absolute). PNGs are upright;
    MONAI's PILReader loads images and masks alike as ``W x H``, so they stay aligned.

    Every image and mask is read before anything is moved into ``out_dir``; the datalist is written last,
    atomically.

    Args:
        root: the ISIC 2018 folder.
        trap_dir: the trap-set folder.
        out_dir: the output folder.
        seed: the trap set, 1 to 5.
        size: output side in pixels; 0 or ``None`` references the original images.
        val_from_train: see :func:`isic_splits`.
        val_seed: see :func:`isic_splits`.
        spurious: the rule for ``s`` (:func:`spurious_labels`).
        workers: threads reading and writing images.

    Returns:
        the path of ``datalist.json``.

    Raises:
        ValueError: for malformed trap sets (see :func:`read_trap_set`, :func:`isic_splits`), listing every image
            whose JPEG or mask is missing, unreadable or of another size.
    """
    root = Path(root).expanduser().resolve()
    out = Path(out_dir).expanduser().resolve()
    if spurious not in SPURIOUS_RULES:
        raise ValueError(f"spurious rule must be one of {', '.join(SPURIOUS_RULES)}, got {spurious!r}")
    if size is not None and size != 0 and int(size) < 1:
        raise ValueError(f"size must be >= 1 (or 0 to keep the original images), got {size}")
    for folder in (_IMAGE_DIR, _MASK_DIR):
        if not (root / folder).is_dir():
            raise FileNotFoundError(f"ISIC folder not found: {root / folder}")
    splits, notes = isic_splits(trap_dir, seed, val_from_train=val_from_train, val_seed=val_seed)
    labels = {r["id"]: r["y"] for rows in splits.values() for r in rows}
    ids = list(labels)
    side = None if not size else int(size)

    staging = StagedOutput(out)
    try:
        def process(image_id: str) -> str | None:
            try:
                image, lesion = _read_pair(root, image_id)
            except ValueError as e:
                return str(e)
            if side is not None:
                image, lesion = resize_image(image, side), resize_mask(lesion, side)
                staging.write_png(f"images/{image_id}.png", image)
            staging.write_png(f"lesions/{image_id}.png", lesion.astype(np.uint8) * 255)
            staging.write_png(f"masks/{image_id}.png", lesion.astype(np.uint8) * (255 * labels[image_id]))
            return None

        problems = [e for e in map_threads(ids, process, workers) if e is not None]
        if problems:
            raise ValueError(f"{len(problems)} problem(s) in the ISIC 2018 images (nothing was written):"
                             f"{summarise_problems(problems)}")
        folders = ("images", "lesions", "masks") if side is not None else ("lesions", "masks")
        staging.commit([f"{d}/{i}.png" for i in ids for d in folders])
    except BaseException:
        staging.abort()
        raise

    content: dict[str, Any] = {
        "name": "spatialspec-isic2018-trap",
        "description": "ISIC 2018 with the trap sets of Bissoto et al. 2020 (Saab et al. 2022, Sec. 5)",
        "source": str(root), "trap_sets": str(Path(trap_dir).expanduser().resolve()), "trap_set": int(seed),
        "size": side, "format": "png", "spurious": spurious, "artifacts": list(ISIC_ARTIFACTS),
        "val_from_train": val_from_train, "val_seed": val_seed if val_from_train is not None else None,
        "notes": ["label is the abnormality mask: the lesion of malignant images, empty for benign ones; lesion is "
                  "the lesion mask of every image; PNGs are upright, MONAI loads them W x H"],
        "warnings": notes,
    }
    for split, rows in splits.items():
        entries = []
        for row, s in zip(rows, spurious_labels(rows, split, spurious)):
            image_id = row["id"]
            image = f"images/{image_id}.png" if side is not None else str(root / _IMAGE_DIR / f"{image_id}.jpg")
            entry = {"id": image_id, "image": image, "label": f"masks/{image_id}.png",
                     "lesion": f"lesions/{image_id}.png", "y": row["y"], "s": s}
            entry.update({k: v for k, v in row.items() if k not in ("id", "y")})
            entries.append(entry)
        content[split] = entries
    content["counts"] = {k: len(content[k]) for k in TRAP_SPLIT_FILES}
    return write_json_atomic(out / "datalist.json", content)
