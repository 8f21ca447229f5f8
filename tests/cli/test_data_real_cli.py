"""`spatialspec data siim`, `siim-tubes` and `isic`: the real-data commands on small fixtures in the exact formats."""

from __future__ import annotations

import json
import os
import pickle
import shlex
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

from spatialspec.cli.main import main
from spatialspec.data import load_split
from spatialspec.data.siim import rle_encode
from tests.fixtures_real import save_dicom

SIDE = 32
ISIC_HEADER = ",image,dark_corner,hair,gel_border,gel_bubble,ruler,ink,patches,vasc,label,label_string"


def write_dicom(path: Path, pixels: np.ndarray, uid: str) -> None:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = SecondaryCaptureImageStorage, uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = SecondaryCaptureImageStorage, uid, "CR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = pixels.astype(np.uint8).tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_dicom(ds, path)


@pytest.fixture()
def siim(tmp_path):
    """Ten DICOMs in nested folders, a train-rle.csv with leading spaces and a two-instance image, and the
    chest-tube labels of six images as the released pickle."""
    rng = np.random.default_rng(0)
    root = tmp_path / "siim"
    lines, ids, y = ["ImageId, EncodedPixels"], [], []
    for k in range(10):
        uid = str(generate_uid())  # a plain str: the label pickle may hold nothing else
        write_dicom(root / "dicom-images-train" / f"s{k}" / f"r{k}" / f"{uid}.dcm",
                    rng.integers(0, 256, (SIDE, SIDE), dtype=np.uint8), uid)
        if k % 2:
            lines.append(f"{uid}, -1")
        else:
            for i in range(1 + (k == 0)):
                mask = np.zeros((SIDE, SIDE), bool)
                mask[4 + 10 * i:9 + 10 * i, 5 + k:12 + k] = True
                lines.append(f"{uid}, {rle_encode(mask)}")
        ids.append(uid)
        y.append(int(k % 2 == 0))
    (root / "train-rle.csv").write_text("\n".join(lines) + "\n")
    tubes = {ids[k]: bool(t) for k, t in zip(range(6), [1, 0, 1, 0, 0, 1])}
    (tmp_path / "cxr_tube_dict.pkl").write_bytes(pickle.dumps(tubes))
    return root, ids, y, tubes


def test_siim_tubes_then_siim(siim, tmp_path, capsys):
    root, ids, y, tubes = siim
    csv_path = tmp_path / "tubes.csv"
    assert main(["data", "siim-tubes", "--pickle", str(tmp_path / "cxr_tube_dict.pkl"), "--out", str(csv_path)]) == 0
    assert "wrote 6 chest-tube labels (3 with a tube)" in capsys.readouterr().out
    assert csv_path.read_text().splitlines() == ["ImageId,tube"] + [f"{k},{int(v)}" for k, v in tubes.items()]
    out = tmp_path / "out"
    assert main(["data", "siim", "--root", str(root), "--tubes", str(csv_path), "--out", str(out), "--size", "16",
                 "--split", "random", "--seed", "2", "--n-val", "2", "--n-test", "3"]) == 0
    assert "wrote 5 training, 2 validation and 3 test images" in capsys.readouterr().out
    content = json.loads((out / "datalist.json").read_text())
    assert content["split"] == "random" and content["size"] == 16
    for split in ("training", "validation", "test"):
        entries = load_split(split, datalist=out / "datalist.json", require_mask=True)
        for entry in entries:
            image_id = entry["id"]
            assert entry["y"] == y[ids.index(image_id)]
            assert entry["tube"] == (int(tubes[image_id]) if image_id in tubes else -1)
            assert entry["s"] == max(entry["tube"], 0)
            mask = np.asarray(Image.open(entry["label"]))
            assert mask.shape == (16, 16) and int(mask.any()) == entry["y"]
            if split != "training":
                assert image_id in tubes


def test_siim_official_default(siim, tmp_path, capsys):
    root, ids, _, tubes = siim
    csv_path = tmp_path / "tubes.csv"
    csv_path.write_text("ImageId,tube\n" + "".join(f"{k},{int(v)}\n" for k, v in tubes.items()))
    assert main(["data", "siim", "--root", str(root), "--tubes", str(csv_path), "--out", str(tmp_path / "o")]) == 0
    content = json.loads((tmp_path / "o" / "datalist.json").read_text())
    # 6 labelled images: round(6 * 1000 / 1951) = 3 test, 3 validation; the 4 others are training
    assert content["counts"] == {"training": 4, "validation": 3, "test": 3}
    assert content["size"] == 512
    assert np.asarray(Image.open(tmp_path / "o" / content["test"][0]["image"])).shape == (512, 512)


def test_siim_unreadable_dicom(siim, tmp_path, capsys):
    root, ids, _, tubes = siim
    csv_path = tmp_path / "tubes.csv"
    csv_path.write_text("ImageId,tube\n" + "".join(f"{k},{int(v)}\n" for k, v in tubes.items()))
    bad = next(root.glob(f"dicom-images-train/*/*/{ids[7]}.dcm"))
    bad.write_bytes(b"broken")
    out = tmp_path / "out"
    argv = ["data", "siim", "--root", str(root), "--tubes", str(csv_path), "--out", str(out), "--size", "16"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "spatialspec data: error:" in err and str(bad) in err and "--skip-bad" in err
    assert not out.exists()
    with pytest.warns(RuntimeWarning, match="skipped 1"):
        assert main(argv + ["--skip-bad"]) == 0
    content = json.loads((out / "datalist.json").read_text())
    assert sum(content["counts"].values()) == 9 and str(bad) in content["skipped"][0]


@pytest.mark.filterwarnings("ignore:9 DICOM file")
def test_siim_bad_inputs(siim, tmp_path, capsys):
    root, ids, _, _ = siim
    out = tmp_path / "out"
    # a pickle where the CSV belongs
    assert main(["data", "siim", "--root", str(root), "--tubes", str(tmp_path / "cxr_tube_dict.pkl"),
                 "--out", str(out)]) == 2
    assert "siim-tubes" in capsys.readouterr().err
    # missing columns
    (tmp_path / "t.csv").write_text("ImageId,label\n")
    assert main(["data", "siim", "--root", str(root), "--tubes", str(tmp_path / "t.csv"), "--out", str(out)]) == 2
    assert "missing column(s) ['tube']" in capsys.readouterr().err
    # a missing RLE file
    (tmp_path / "ok.csv").write_text(f"ImageId,tube\n{ids[0]},1\n")
    assert main(["data", "siim", "--root", str(tmp_path), "--tubes", str(tmp_path / "ok.csv"),
                 "--out", str(out)]) == 2
    assert "RLE file not found" in capsys.readouterr().err
    # a malformed RLE
    (root / "train-rle.csv").write_text(f"ImageId, EncodedPixels\n{ids[0]}, 3 4 5\n")
    assert main(["data", "siim", "--root", str(root), "--tubes", str(tmp_path / "ok.csv"), "--out", str(out)]) == 2
    assert f"ImageId {ids[0]}: run-length encoding has an odd number" in capsys.readouterr().err
    assert not out.exists()
    # official split sizes are not options
    assert main(["data", "siim", "--root", str(root), "--tubes", str(tmp_path / "ok.csv"), "--out", str(out),
                 "--n-test", "2"]) == 2


def test_siim_tubes_refuses_malicious_pickle(tmp_path, capsys):
    marker = tmp_path / "executed"

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {shlex.quote(str(marker))}",)

    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"1.2.3": Payload()}))
    assert main(["data", "siim-tubes", "--pickle", str(tmp_path / "evil.pkl"), "--out",
                 str(tmp_path / "tubes.csv")]) == 2
    err = capsys.readouterr().err
    assert "evil.pkl" in err and "refused" in err and ("posix.system" in err or "os.system" in err)
    assert not marker.exists() and not (tmp_path / "tubes.csv").exists()


def test_siim_tubes_with_test_pickle(tmp_path, capsys):
    (tmp_path / "a.pkl").write_bytes(pickle.dumps({"1.1": True, "1.2": False}))
    (tmp_path / "b.pkl").write_bytes(pickle.dumps({"1.3": True}))
    assert main(["data", "siim-tubes", "--pickle", str(tmp_path / "a.pkl"), "--test-pickle", str(tmp_path / "b.pkl"),
                 "--out", str(tmp_path / "t.csv")]) == 0
    assert (tmp_path / "t.csv").read_text() == "ImageId,tube,split\n1.1,1,val\n1.2,0,val\n1.3,1,test\n"


@pytest.fixture()
def isic(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / "isic"
    (root / "ISIC2018_Task1-2_Training_Input").mkdir(parents=True)
    (root / "ISIC2018_Task1_Training_GroundTruth").mkdir(parents=True)
    rows = []
    for k in range(12):
        name = f"ISIC_{k:07d}"
        Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)).save(
            root / "ISIC2018_Task1-2_Training_Input" / f"{name}.jpg")
        lesion = np.zeros((24, 32), np.uint8)
        lesion[6:15, 8 + k:20 + k] = 255
        Image.fromarray(lesion).save(root / "ISIC2018_Task1_Training_GroundTruth" / f"{name}_segmentation.png")
        label = k % 2
        flags = [int(v) for v in rng.random(8) < 0.5]
        rows.append(f"{name}.png,{','.join(map(str, flags))},{label},{'malignant' if label else 'benign'}")
    trap = tmp_path / "trap-sets"
    trap.mkdir()
    for stem, members in (("train", range(8)), ("val", (0, 1, 2)), ("test", range(8, 12))):
        lines = [ISIC_HEADER] + [f"{i},{rows[k]}" for i, k in enumerate(members)]
        (trap / f"isic_annotated_{stem}3.csv").write_text("\n".join(lines) + "\n")
    return root, trap


def test_isic(isic, tmp_path, capsys):
    root, trap = isic
    out = tmp_path / "out"
    with pytest.warns(UserWarning, match="3 of the 3 validation images are also training images"):
        assert main(["data", "isic", "--root", str(root), "--trap-sets", str(trap), "--seed", "3", "--out", str(out),
                     "--size", "8"]) == 0
    assert "wrote 8 training, 3 validation and 4 test images" in capsys.readouterr().out
    entries = load_split("test", datalist=out / "datalist.json", require_mask=True)
    assert [e["s"] for e in entries] == [1 - e["y"] for e in entries]
    assert all(np.asarray(Image.open(e["image"])).shape == (8, 8, 3) for e in entries)
    assert main(["data", "isic", "--root", str(root), "--trap-sets", str(trap), "--seed", "3", "--out", str(out),
                 "--size", "8", "--val-from-train", "0.25", "--val-seed", "1", "--spurious", "ruler"]) == 0
    content = json.loads((out / "datalist.json").read_text())
    assert content["counts"] == {"training": 6, "validation": 2, "test": 4}
    assert all(e["s"] == e["ruler"] for split in ("training", "validation", "test") for e in content[split])


def test_isic_bad_inputs(isic, tmp_path, capsys):
    root, trap = isic
    out = tmp_path / "out"
    assert main(["data", "isic", "--root", str(root), "--trap-sets", str(trap), "--seed", "2", "--out",
                 str(out)]) == 2
    assert "isic_annotated_train2.csv" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["data", "isic", "--root", str(root), "--trap-sets", str(trap), "--seed", "6", "--out", str(out)])
    assert info.value.code == 2
    (root / "ISIC2018_Task1-2_Training_Input" / "ISIC_0000009.jpg").unlink()
    assert main(["data", "isic", "--root", str(root), "--trap-sets", str(trap), "--seed", "3", "--out", str(out),
                 "--val-from-train", "0.25", "--size", "8"]) == 2
    assert "ISIC_0000009: file not found" in capsys.readouterr().err
    assert not out.exists()
