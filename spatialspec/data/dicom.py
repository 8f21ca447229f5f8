"""Reading one 8-bit grayscale radiograph from DICOM (SIIM-ACR's chest X-rays; Saab et al. 2022, Sec. 5)."""

from __future__ import annotations

import os
import warnings

import numpy as np

__all__ = ["read_dicom"]


def read_dicom(path: str | os.PathLike) -> np.ndarray:
    """Read an 8-bit grayscale DICOM through MONAI ``LoadImage`` (``PydicomReader``) as a ``rows x columns`` uint8
    array in the orientation of the pixel data (the orientation of the SIIM run-length masks).

    MONOCHROME1 images are inverted so that bright is dense, as in MONOCHROME2.

    Raises:
        ValueError: naming the file if it cannot be read or is not a single 8-bit grayscale frame.
    """
    from monai.data import PydicomReader
    from monai.transforms import LoadImage

    reader = PydicomReader(swap_ij=False, prune_metadata=False)
    loader = LoadImage(reader=reader, image_only=False)
    try:
        with warnings.catch_warnings():
            # plain radiographs have no ImageOrientationPatient: MONAI's identity affine is what we want
            warnings.filterwarnings("ignore", message="PydicomReader: ImageOrientationPatient")
            # the reader given at call time is the only one tried (no fallback to PIL or ITK for a broken file)
            image, meta = loader(str(path), reader=reader)
    except Exception as e:  # MONAI wraps the reader's error in a RuntimeError or OSError
        raise ValueError(f"cannot read DICOM {path}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                         ) from None
    array = np.asarray(image)
    if array.ndim == 3 and 1 in array.shape:
        array = array.reshape([s for s in array.shape if s != 1])
    if array.ndim != 2:
        raise ValueError(f"DICOM {path}: expected one grayscale frame, got pixel data of shape {array.shape}")
    if array.size == 0 or array.min() < 0 or array.max() > 255 or not np.array_equal(array, np.round(array)):
        raise ValueError(f"DICOM {path}: expected 8-bit grayscale pixels (0..255), got values in "
                         f"[{array.min() if array.size else 'n/a'}, {array.max() if array.size else 'n/a'}]")
    photometric = meta.get("00280004", {}).get("Value", ["MONOCHROME2"])[0]
    array = array.astype(np.uint8)
    if str(photometric).strip().upper() == "MONOCHROME1":
        array = 255 - array
    return array
