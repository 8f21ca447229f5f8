"""MONAI decathlon-style datalists: where real data sets enter, and how the synthetic data is written to files.

A datalist is a JSON file ``{"training": [...], "validation": [...], "test": [...]}``; each entry holds ``image``
(a path), ``y`` (the image label), ``s`` (the spurious label) and, for the location-supervised levels, ``label``
(the abnormal mask path). ``spurious_mask`` is optional. Relative paths are resolved against the file's folder,
as :func:`monai.data.load_decathlon_datalist` does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from spatialspec.atomic import write_json_atomic
from spatialspec.errors import InputError

from .synthetic import SPLITS, SyntheticParams, generate_split, parse_synthetic_overrides
from .validate import binary_label_problem

__all__ = ["load_split", "write_synthetic_datalist", "REQUIRED_KEYS"]

REQUIRED_KEYS = ("image", "y", "s")


def load_split(split: str = "training", datalist: str | os.PathLike | None = None,
               synthetic: SyntheticParams | dict[str, Any] | None = None, seed: int = 0,
               require_mask: bool = True) -> list[dict[str, Any]]:
    """The entries of one split, from a datalist file or, when ``datalist`` is empty, from the synthetic generator.

    Args:
        split: ``training``, ``validation`` or ``test``.
        datalist: path of a decathlon-style JSON file; ``None`` or ``""`` selects the built-in synthetic data.
        synthetic: generator parameters: a :class:`SyntheticParams`, or a dict of overrides parsed like the
            command line's ``--synthetic`` (:func:`~spatialspec.data.parse_synthetic_overrides`: ``{rho: '0.9'}``
            is read as 0.9).
        seed: generator seed (ignored for a datalist file).
        require_mask: whether every entry must name its abnormal mask under ``label`` (all levels but the
            image-level classifier need it).

    The checks here are the per-entry fields only; :func:`spatialspec.data.validate_datalist` checks a whole
    datalist (files, shapes, classes) before a command starts.

    Raises:
        FileNotFoundError: if the datalist file does not exist.
        InputError: (a ``ValueError``) naming the synthetic parameter that does not parse, or the file, split,
            entry and field when an entry lacks a required field or holds a label outside {0, 1}.
    """
    if split not in SPLITS:
        raise InputError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if not datalist:
        params = synthetic if isinstance(synthetic, SyntheticParams) else parse_synthetic_overrides(synthetic or {})
        return generate_split(params, split, seed)
    path = Path(datalist).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"datalist file not found: {path}")
    try:
        with open(path) as f:
            content = json.load(f)
    except json.JSONDecodeError as e:
        raise InputError(f"datalist {path} is not valid JSON: {e}") from None
    if not isinstance(content, dict) or split not in content:
        raise InputError(f"datalist {path} has no '{split}' split (it has "
                         f"{sorted(content) if isinstance(content, dict) else 'no object'})")
    from monai.data import load_decathlon_datalist  # MONAI only for a datalist file, not for the synthetic data

    entries = load_decathlon_datalist(str(path), is_segmentation=True, data_list_key=split, base_dir=str(path.parent))
    required = REQUIRED_KEYS + (("label",) if require_mask else ())
    for i, entry in enumerate(entries):
        missing = [k for k in required if k not in entry]
        if missing:
            raise InputError(f"datalist {path}, split '{split}', entry {i}: missing field(s) {missing}")
        for key in ("y", "s"):
            problem = binary_label_problem(entry[key])
            if problem:
                raise InputError(f"datalist {path}, split '{split}', entry {i}: field '{key}' {problem}")
    return entries


def _save(array: np.ndarray, path: Path, fmt: str, scale: tuple[float, float] | None = None) -> None:
    """Write one 1 x H x W array as NIfTI (exact floats) or PNG (8-bit, min-max ``scale``)."""
    if fmt == "nifti":
        import nibabel as nib

        nib.save(nib.Nifti1Image(array[0].astype(np.float32), np.eye(4)), str(path))
        return
    from PIL import Image

    plane = array[0]
    if scale is not None:
        lo, hi = scale
        plane = np.clip((plane - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    # MONAI's PILReader transposes to (W, H) on load, so store the transpose to read back channel-first H x W.
    Image.fromarray(np.round(plane.T * 255).astype(np.uint8)).save(path)


def write_synthetic_datalist(out_dir: str | os.PathLike, params: SyntheticParams | None = None, seed: int = 0,
                             fmt: str = "nifti") -> Path:
    """Write the synthetic data set as files plus ``out_dir/datalist.json`` (decathlon style, relative paths).

    Images, abnormal masks (``label``) and spurious masks (``spurious_mask``) are written per split. NIfTI keeps
    the exact float intensities; PNG (for viewing and annotation tools) maps each split's intensity range to 8 bits
    and records the range under ``intensity_range``. The datalist is written last, atomically, so a reader never
    sees a datalist that names missing files.

    Returns:
        the path of ``datalist.json``.
    """
    if fmt not in ("nifti", "png"):
        raise ValueError(f"format must be 'nifti' or 'png', got {fmt!r}")
    params = params or SyntheticParams()
    out = Path(out_dir).expanduser().resolve()
    ext = ".nii.gz" if fmt == "nifti" else ".png"
    content: dict[str, Any] = {"name": "spatialspec-synthetic", "description": "Saab et al. 2022, Sec. 3.2.2",
                               "synthetic": params.to_dict(), "seed": seed, "format": fmt}
    for split in SPLITS:
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        samples = generate_split(params, split, seed)
        images = np.stack([s["image"] for s in samples])
        scale = (float(images.min()), float(images.max()))
        if fmt == "png":
            content.setdefault("intensity_range", {})[split] = list(scale)
        entries = []
        for sample in samples:
            entry = {"id": sample["id"], "y": sample["y"], "s": sample["s"]}
            for key, name, kscale in (("image", "image", scale), ("label", "mask", None),
                                      ("spurious_mask", "spurious", None)):
                rel = f"{split}/{sample['id']}_{name}{ext}"
                _save(sample[key], out / rel, fmt, kscale if key == "image" else None)
                entry[key] = rel
            entries.append(entry)
        content[split] = entries
    return write_json_atomic(out / "datalist.json", content)
