"""A folder of raw input images for inference (``--input_dir``): SIIM-ACR DICOMs or ISIC JPEG/PNG files, read the way
the data set writers read them (Saab et al. 2022, Sec. 5, App. A.1), so that inference on the files sees what training
saw.

:func:`folder_datalist` lists a folder (recursively, hidden files skipped) as datalist entries and checks every file's
header first, so a bad folder ends in one line naming it before a network is built; :func:`read_input_image` decodes
one file like ``spatialspec data siim`` (:func:`spatialspec.data.dicom.read_dicom`) and ``spatialspec data isic``
(PIL, RGB) do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from spatialspec.errors import InputError

from .export import summarise_problems

__all__ = ["INPUT_EXTENSIONS", "folder_datalist", "read_input_image", "input_image_problem"]

#: file extensions read from ``--input_dir``, lower case: DICOM (SIIM-ACR) and 8-bit images (ISIC 2018)
INPUT_EXTENSIONS = (".dcm", ".png", ".jpg", ".jpeg")
_DICOM = ".dcm"


def _is_dicom(path: Path) -> bool:
    return path.suffix.lower() == _DICOM


def _check_channels(channels: int) -> int:
    if channels not in (1, 3):
        raise InputError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels!r}")
    return int(channels)


def input_image_problem(path: str | os.PathLike, channels: int) -> str | None:
    """What keeps ``path`` from being read as a ``channels``-channel input, from its header alone (``None``: none).

    A DICOM must hold one grayscale frame (one sample per pixel) and is read for one-channel models only; a PNG or
    JPEG is converted to RGB for three-channel models (as ``spatialspec data isic`` does) and must be 8-bit
    grayscale (PIL mode ``L``) for one-channel models.
    """
    path = Path(path)
    channels = _check_channels(channels)
    if path.suffix.lower() not in INPUT_EXTENSIONS:
        return f"{path}: unsupported file type (expected {', '.join(INPUT_EXTENSIONS)})"
    if _is_dicom(path):
        if channels != 1:
            return f"{path}: a DICOM radiograph has one channel, the model takes {channels}"
        import pydicom

        try:
            header = pydicom.dcmread(str(path), stop_before_pixels=True)
        except Exception as e:  # pydicom raises several types for broken files
            return f"{path}: cannot read DICOM: {type(e).__name__}: {e}"
        if int(getattr(header, "SamplesPerPixel", 1)) != 1 or "Rows" not in header or "Columns" not in header:
            return f"{path}: expected one grayscale frame (Rows, Columns, SamplesPerPixel 1)"
        return None
    from PIL import Image

    try:
        with Image.open(path) as opened:
            mode = opened.mode
    except Exception as e:  # PIL raises several types for broken files
        return f"{path}: cannot read image: {type(e).__name__}: {e}"
    if channels == 1 and mode != "L":
        return f"{path}: the model takes 8-bit grayscale images (PIL mode L), this one is {mode}"
    return None


def read_input_image(path: str | os.PathLike, channels: int) -> np.ndarray:
    """Decode one input file to uint8 ``rows x columns`` (one channel) or ``rows x columns x 3`` (RGB), in the
    file's own orientation, exactly as the data set writers decode their sources: a DICOM through
    :func:`~spatialspec.data.dicom.read_dicom` (MONOCHROME1 inverted), a JPEG or PNG through PIL (``convert('RGB')``
    for three channels, as the ISIC writer does).

    Raises:
        InputError: naming the file when it cannot be read as a ``channels``-channel input.
    """
    path = Path(path)
    problem = input_image_problem(path, channels)
    if problem:
        raise InputError(problem)
    if _is_dicom(path):
        from .dicom import read_dicom

        try:
            return read_dicom(path)
        except ValueError as e:
            raise InputError(str(e)) from None
    from PIL import Image

    try:
        with Image.open(path) as opened:
            return np.asarray(opened.convert("RGB") if channels == 3 else opened)
    except Exception as e:  # a file whose header reads but whose data is broken
        raise InputError(f"{path}: cannot read image: {type(e).__name__}: {e}") from None


def folder_datalist(input_dir: str | os.PathLike, channels: int = 1) -> list[dict[str, Any]]:
    """The images of a folder as inference entries ``{"id", "image"}``, sorted by path, every file's header checked.

    The folder is walked recursively (the SIIM-ACR release nests its DICOMs two folders deep); files and folders
    whose name starts with ``.`` are skipped. ``id`` is the file name without its extension (a SIIM DICOM's
    SOPInstanceUID, an ISIC image id: the ids of the written datalists), or the path relative to the folder with
    ``/`` as ``__`` when two files share a name.

    Args:
        input_dir: the folder (``--input_dir``).
        channels: the network's input channels (``in_channels``): 1 reads DICOM and grayscale images, 3 reads
            JPEG/PNG as RGB.

    Raises:
        InputError: naming the folder when it is missing or holds no image, or listing the files of another type
            or that cannot be read (at most 10, then how many more).
    """
    channels = _check_channels(channels)
    root = Path(input_dir).expanduser()
    if not root.is_dir():
        raise InputError(f"input_dir {root}: {'not a folder' if root.exists() else 'no such folder'}")
    files = sorted(p for p in root.rglob("*") if p.is_file()
                   and not any(part.startswith(".") for part in p.relative_to(root).parts))
    if not files:
        raise InputError(f"input_dir {root}: no input images in it (expected {', '.join(INPUT_EXTENSIONS)} files)")
    problems = [p for p in (input_image_problem(f, channels) for f in files) if p]
    if problems:
        raise InputError(f"input_dir {root}: {len(problems)} of {len(files)} files cannot be read:"
                         + summarise_problems(problems))
    stems = [f.stem for f in files]
    unique = len(set(stems)) == len(stems)
    return [{"id": f.stem if unique else str(f.relative_to(root).with_suffix("")).replace(os.sep, "__"),
             "image": str(f.resolve())} for f in files]
