"""Writers of small SIIM-ACR and ISIC 2018 fixtures in the exact published formats, shared by the reader tests
(tests/data) and the bundle dataset-config tests (tests/bundles/test_dataset_configs.py).

SIIM-ACR: nested DICOM folders named by SOPInstanceUID, ``train-rle.csv`` with leading spaces and multi-instance
rows, a chest-tube CSV. ISIC 2018: JPEG images, lesion masks and trap sets 1 and 2 with an unnamed index column.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from spatialspec.data.siim import rle_encode

__all__ = ["SIDE", "blob", "save_dicom", "write_dicom", "make_siim", "write_tubes", "TRAP_HEADER", "HEIGHT", "WIDTH",
           "isic_id", "write_trap_csv", "make_isic"]

# ----------------------------------------------------------------------------------------------- SIIM-ACR
SIDE = 64


def blob(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A random filled ellipse, like a pneumothorax instance."""
    rows, cols = np.mgrid[:height, :width]
    cy, cx = rng.uniform(8, height - 8), rng.uniform(8, width - 8)
    ry, rx = rng.uniform(3, 10), rng.uniform(3, 10)
    return ((rows - cy) / ry) ** 2 + ((cols - cx) / rx) ** 2 <= 1


def save_dicom(ds: Dataset, path: Path) -> None:
    """Write ``ds`` to ``path`` in the DICOM File Format (preamble, ``DICM`` prefix, file meta information), under
    pydicom 3 (``enforce_file_format=True``) and pydicom 2 (``write_like_original=False``, deprecated in 3) alike."""
    if "enforce_file_format" in inspect.signature(pydicom.dcmwrite).parameters:
        pydicom.dcmwrite(path, ds, enforce_file_format=True)
    else:  # pydicom < 3
        pydicom.dcmwrite(path, ds, write_like_original=False)


def write_dicom(path: Path, pixels: np.ndarray, uid: str, photometric: str = "MONOCHROME2", bits: int = 8) -> None:
    """An uncompressed single-frame grayscale DICOM of ``pixels`` (``bits`` 8 or 16) with SOPInstanceUID ``uid``."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = SecondaryCaptureImageStorage, uid, "CR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = bits, bits, bits - 1, 0
    ds.PixelData = pixels.astype(np.uint8 if bits == 8 else np.uint16).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_dicom(ds, path)


def make_siim(root: Path, n: int = 14, seed: int = 0) -> dict:
    """A SIIM-ACR folder in the exact published layout: nested DICOM folders named by SOPInstanceUID and a
    train-rle.csv with leading spaces and multi-instance rows. Returns the ground truth."""
    rng = np.random.default_rng(seed)
    truth = {"pixels": {}, "mask": {}, "first": {}, "y": {}, "paths": {}}
    lines = ["ImageId, EncodedPixels"]
    for k in range(n):
        uid = generate_uid(prefix="1.2.276.0.7230010.3.1.4.")
        pixels = rng.integers(0, 256, size=(SIDE, SIDE), dtype=np.uint8)
        path = root / "dicom-images-train" / generate_uid() / generate_uid() / f"{uid}.dcm"
        write_dicom(path, pixels, uid)
        positive = k % 2 == 0
        instances = [blob(rng, SIDE, SIDE) for _ in range(1 + (k % 4 == 0))] if positive else []
        for inst in instances:
            lines.append(f"{uid}, {rle_encode(inst)}")
        if not positive:
            lines.append(f"{uid}, -1")
        union = np.zeros((SIDE, SIDE), bool)
        for inst in instances:
            union |= inst
        truth["pixels"][uid], truth["mask"][uid] = pixels, union
        truth["y"][uid], truth["paths"][uid] = int(positive), path
        truth["first"][uid] = instances[0] if instances else union
    (root / "train-rle.csv").write_text("\n".join(lines) + "\n")
    return truth


def write_tubes(path: Path, ids: list[str], tubes: list[int], splits: list[str] | None = None) -> Path:
    rows = ["ImageId,tube" + (",split" if splits else "")]
    for i, image_id in enumerate(ids):
        rows.append(f"{image_id},{tubes[i]}" + (f",{splits[i]}" if splits else ""))
    path.write_text("\n".join(rows) + "\n")
    return path


# ----------------------------------------------------------------------------------------------- ISIC 2018
TRAP_HEADER = ",image,dark_corner,hair,gel_border,gel_bubble,ruler,ink,patches,vasc,label,label_string"
HEIGHT, WIDTH = 48, 64


def isic_id(k: int) -> str:
    return f"ISIC_{k:07d}"


def write_trap_csv(path: Path, rows: list[tuple[int, list[int], int]]) -> None:
    """rows: (image number, eight flags incl. vasc, label), written as pandas writes it (unnamed index column)."""
    lines = [TRAP_HEADER]
    for index, (k, flags, label) in enumerate(rows):
        lines.append(f"{index},{isic_id(k)}.png,{','.join(map(str, flags))},{label},"
                     f"{'malignant' if label else 'benign'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def make_isic(root: Path, seed: int = 0) -> dict:
    """ISIC 2018 images and masks plus trap set 1 and 2 in the published formats; returns the ground truth."""
    rng = np.random.default_rng(seed)
    truth: dict = {"label": {}, "flags": {}, "lesion": {}}
    (root / "ISIC2018_Task1-2_Training_Input").mkdir(parents=True)
    (root / "ISIC2018_Task1_Training_GroundTruth").mkdir(parents=True)
    for k in range(22):
        image = rng.integers(0, 256, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
        Image.fromarray(image).save(root / "ISIC2018_Task1-2_Training_Input" / f"{isic_id(k)}.jpg", quality=90)
        rows, cols = np.mgrid[:HEIGHT, :WIDTH]
        lesion = ((rows - rng.uniform(10, 38)) / 8) ** 2 + ((cols - rng.uniform(10, 54)) / 11) ** 2 <= 1
        Image.fromarray(lesion.astype(np.uint8) * 255).save(
            root / "ISIC2018_Task1_Training_GroundTruth" / f"{isic_id(k)}_segmentation.png")
        truth["label"][k] = int(k % 3 == 0)
        truth["flags"][k] = [int(v) for v in rng.random(8) < 0.4]
        truth["lesion"][k] = lesion
    rows = {k: (k, truth["flags"][k], truth["label"][k]) for k in range(22)}
    trap = root / "trap-sets"
    for s in (1, 2):
        train = list(range(0, 14))
        write_trap_csv(trap / f"isic_annotated_train{s}.csv", [rows[k] for k in train])
        write_trap_csv(trap / f"isic_annotated_val{s}.csv", [rows[k] for k in (1, 3, 6, 9)])  # all in train
        write_trap_csv(trap / f"isic_annotated_test{s}.csv", [rows[k] for k in range(14, 22)])
    truth["trap"] = trap
    return truth
