"""Reading 8-bit grayscale DICOMs (spatialspec.data.dicom) from files written by the fixtures: orientation, JPEG
Baseline pixel data, MONOCHROME1 and unreadable files."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import generate_uid

from spatialspec.data.dicom import read_dicom
from tests.fixtures_real import save_dicom, write_dicom


def test_read_dicom_non_square_orientation(tmp_path):
    pixels = np.arange(6 * 10, dtype=np.uint8).reshape(6, 10)
    write_dicom(tmp_path / "a.dcm", pixels, generate_uid())
    np.testing.assert_array_equal(read_dicom(tmp_path / "a.dcm"), pixels)


def test_read_dicom_jpeg_baseline(tmp_path):
    # the released SIIM-ACR DICOMs hold JPEG Baseline pixel data: decode it like PIL decodes the same stream
    import io

    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    pixels = (np.add.outer(np.arange(40), np.arange(56)) * 2 % 256).astype(np.uint8)
    stream = io.BytesIO()
    Image.fromarray(pixels).save(stream, format="JPEG", quality=90)
    path = tmp_path / "jpeg.dcm"
    write_dicom(path, pixels, generate_uid())
    ds = pydicom.dcmread(path)
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.PixelData = encapsulate([stream.getvalue()])
    ds["PixelData"].VR = "OB"
    save_dicom(ds, path)
    expected = np.asarray(Image.open(io.BytesIO(stream.getvalue())))
    np.testing.assert_array_equal(read_dicom(path), expected)
    assert np.abs(expected.astype(int) - pixels).max() < 8  # the fixture really is the image, lossily coded


def test_read_dicom_monochrome1_inverted(tmp_path):
    pixels = np.arange(64, dtype=np.uint8).reshape(8, 8)
    write_dicom(tmp_path / "m1.dcm", pixels, generate_uid(), photometric="MONOCHROME1")
    np.testing.assert_array_equal(read_dicom(tmp_path / "m1.dcm"), 255 - pixels)


def test_read_dicom_errors(tmp_path):
    wide = np.full((8, 8), 1000, dtype=np.uint16)
    write_dicom(tmp_path / "w.dcm", wide, generate_uid(), bits=16)
    with pytest.raises(ValueError, match=r"w\.dcm: expected 8-bit"):
        read_dicom(tmp_path / "w.dcm")
    (tmp_path / "junk.dcm").write_bytes(b"not a dicom at all")
    with pytest.raises(ValueError, match=r"cannot read DICOM .*junk\.dcm"):
        read_dicom(tmp_path / "junk.dcm")
