"""Inference on a folder of real files (``--input_dir``) with the training preprocessing: SIIM-ACR DICOMs and ISIC
JPEGs in the published formats (tests/fixtures_real.py), a seeded random-init checkpoint, and the scores of
``evaluate.yaml`` on the data set written from the same files by ``spatialspec data siim|isic``.

In-process: the folder reader's checks, the boxes of a mask, and the ISIC chain (small networks) against evaluate
and against an independent computation of the mask in the input's geometry. Slow: the paper-scale SIIM chain
through ``python -m monai.bundle run`` and a bad folder's one-line error.
"""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from ignite.engine import Events
from monai.bundle import ConfigWorkflow
from PIL import Image

from spatialspec import registry
from spatialspec.data import folder_datalist
from spatialspec.data.isic import write_isic_datalist
from spatialspec.data.siim import rle_encode, write_siim_datalist
from spatialspec.errors import InputError
from spatialspec.transforms import location_boxes
from tests.fixtures_real import blob, make_isic, write_dicom, write_tubes

# the fixtures' few test images leave some (y, s) pairs empty: evaluate reports those AUROCs as NaN, with a warning
pytestmark = pytest.mark.filterwarnings("ignore:AUROC of subset")
REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLES_DIR = REPO_ROOT / "bundles"
SIZE = 32  # image_size of the runs (paper-scale sides are multiples of 32); the sources are larger and not square
ROWS, COLUMNS = 80, 96  # the SIIM DICOMs
ISIC_STATS = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def _files(name: str, dataset: str, kind: str, paper_scale: bool = False) -> list[str]:
    return [str(f) for f in registry.config_files(name, kind, dataset=dataset, paper_scale=paper_scale,
                                                  bundles_dir=BUNDLES_DIR)]


def _workflow(name: str, dataset: str, kind: str, out: Path, paper_scale: bool = False, **overrides) -> ConfigWorkflow:
    meta = registry.meta_file(name, BUNDLES_DIR)
    return ConfigWorkflow(config_file=_files(name, dataset, kind, paper_scale), meta_file=str(meta),
                          logging_file=False, workflow_type="infer" if kind == "inference" else "eval",
                          bundle_root=str(meta.parents[1]), output_dir=str(out), image_size=SIZE, device="cpu",
                          **overrides)


def _checkpoint(name: str, dataset: str, out: Path, paper_scale: bool = False, seed: int = 0) -> torch.nn.Module:
    """A seeded random-init network of the chain, saved as ``out/models/model.pt`` (read by evaluate and inference)."""
    parser = _workflow(name, dataset, "inference", out, paper_scale).parser
    torch.manual_seed(seed)
    network = parser.get_parsed_content("network_def")
    (out / "models").mkdir(parents=True, exist_ok=True)
    torch.save(network.state_dict(), out / "models" / "model.pt")
    return network.eval()


def _evaluate_scores(name: str, dataset: str, dataset_dir: Path, out: Path, paper_scale: bool = False
                     ) -> dict[str, float]:
    """``evaluate.yaml``'s image scores of the test split, by id."""
    workflow = _workflow(name, dataset, "evaluate", out, paper_scale, dataset_dir=str(dataset_dir),
                         val_batch_size=4)
    workflow.initialize()
    scores: dict[str, float] = {}
    evaluator = workflow.parser.get_parsed_content("validate#evaluator")

    @evaluator.on(Events.ITERATION_COMPLETED)
    def collect(engine) -> None:
        scores.update(zip(engine.state.batch["id"], engine.state.output["score"].reshape(-1).tolist()))

    workflow.run()
    workflow.finalize()
    return scores


def _csv_scores(path: Path) -> dict[str, float]:
    with open(path, newline="") as f:
        return {Path(row[0]).stem: float(row[1]) for row in csv.reader(f) if row}


# ------------------------------------------------------------------------------------------------ data
@pytest.fixture(scope="module")
def siim(tmp_path_factory) -> dict[str, Path]:
    """Six 80 x 96 SIIM-ACR DICOMs (published layout), the datalist written from them at SIZE, and a folder holding
    the DICOMs of its test split."""
    tmp = tmp_path_factory.mktemp("siim")
    rng = np.random.default_rng(0)
    lines, ids = ["ImageId, EncodedPixels"], []
    for k in range(6):
        uid = f"1.2.276.0.7230010.3.1.4.{k + 1}"
        write_dicom(tmp / "source" / "dicom-images-train" / f"study{k}" / f"series{k}" / f"{uid}.dcm",
                    rng.integers(0, 256, size=(ROWS, COLUMNS), dtype=np.uint8), uid)
        lines.append(f"{uid}, {rle_encode(blob(rng, ROWS, COLUMNS)) if k % 2 == 0 else '-1'}")
        ids.append(uid)
    (tmp / "source" / "train-rle.csv").write_text("\n".join(lines) + "\n")
    tubes = write_tubes(tmp / "tubes.csv", ids[:5], [1, 0, 1, 0, 0], ["val", "val", "test", "test", "test"])
    written = write_siim_datalist(tmp / "source", tmp / "written", tubes=tubes, size=SIZE).parent
    test_ids = [e["id"] for e in json.loads((written / "datalist.json").read_text())["test"]]
    inputs = tmp / "inputs"
    for path in (tmp / "source").rglob("*.dcm"):
        if path.stem in test_ids:  # nested like the release
            target = inputs / path.relative_to(tmp / "source")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    return {"written": written, "inputs": inputs, "test_ids": test_ids}


@pytest.fixture(scope="module")
def isic(tmp_path_factory) -> dict[str, Path]:
    """ISIC 2018 JPEGs (48 x 64) and trap sets, the datalist written from them at SIZE, and a folder with the JPEGs
    of its test split."""
    tmp = tmp_path_factory.mktemp("isic")
    truth = make_isic(tmp / "source")
    with pytest.warns(UserWarning, match="also training images"):
        written = write_isic_datalist(tmp / "source", truth["trap"], tmp / "written", seed=1, size=SIZE).parent
    test_ids = [e["id"] for e in json.loads((written / "datalist.json").read_text())["test"]]
    inputs = tmp / "inputs"
    inputs.mkdir()
    for image_id in test_ids:
        shutil.copy(tmp / "source" / "ISIC2018_Task1-2_Training_Input" / f"{image_id}.jpg", inputs)
    return {"written": written, "inputs": inputs, "test_ids": test_ids}


# ------------------------------------------------------------------------------------------------ library
def test_folder_datalist_lists_and_checks(siim, isic, tmp_path):
    entries = folder_datalist(siim["inputs"], channels=1)
    assert sorted(e["id"] for e in entries) == sorted(siim["test_ids"])  # nested DICOMs, named by SOPInstanceUID
    assert len(folder_datalist(isic["inputs"], channels=3)) == len(isic["test_ids"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"input_dir .*empty: no input images"):
        folder_datalist(tmp_path / "empty")
    with pytest.raises(InputError, match="no such folder"):
        folder_datalist(tmp_path / "missing")
    with pytest.raises(InputError, match="a DICOM radiograph has one channel, the model takes 3"):
        folder_datalist(siim["inputs"], channels=3)
    with pytest.raises(InputError, match=r"8-bit grayscale images \(PIL mode L\), this one is RGB"):
        folder_datalist(isic["inputs"], channels=1)
    mixed = tmp_path / "mixed"
    shutil.copytree(isic["inputs"], mixed)
    (mixed / "notes.txt").write_text("not an image")
    (mixed / "broken.png").write_bytes(b"not a png")
    (mixed / ".DS_Store").write_bytes(b"hidden: skipped")
    with pytest.raises(InputError, match=r"2 of \d+ files cannot be read: .*broken.png: cannot read image.*"
                                         r"notes.txt: unsupported file type"):
        folder_datalist(mixed, channels=3)


def test_location_boxes():
    mask = np.zeros((6, 9), bool)
    mask[1:3, 2:5] = True  # rows 1-2, columns 2-4
    mask[4, 7] = mask[5, 8] = True  # diagonal neighbours: one 8-connected component
    probability = np.arange(54, dtype=float).reshape(6, 9) / 100
    boxes = location_boxes(mask, probability)
    assert boxes == [{"x0": 2, "y0": 1, "x1": 5, "y1": 3, "pixels": 6,
                      "score": pytest.approx(probability[1:3, 2:5].mean())},
                     {"x0": 7, "y0": 4, "x1": 9, "y1": 6, "pixels": 2, "score": pytest.approx((0.43 + 0.53) / 2)}]
    assert len(location_boxes(mask, probability, connectivity=1)) == 3
    assert location_boxes(np.zeros((4, 4)), np.zeros((4, 4))) == []


# ------------------------------------------------------------------------------------------------ bundles
def _expected_isic_location(network: torch.nn.Module, jpeg: Path) -> tuple[np.ndarray, np.ndarray]:
    """The abnormality (melanoma) mask and probability of one JPEG in its own geometry, computed here: decoded with
    PIL, area-resized and rounded like the ISIC writer, laid out as MONAI loads a PNG (C x W x H), normalised, cast
    through float16 like the training cache, then the argmax upsampled (nearest) and transposed back."""
    rgb = np.asarray(Image.open(jpeg).convert("RGB"), dtype=np.float32)
    x = F.interpolate(torch.from_numpy(rgb).permute(2, 0, 1)[None], size=(SIZE, SIZE), mode="area").round()
    mean, std = (torch.tensor(v)[:, None, None] for v in ISIC_STATS)
    x = ((x[0].transpose(1, 2) / 255.0 - mean) / std).half().float()
    with torch.no_grad():
        prob = torch.softmax(network(x[None]), dim=1)[0]
    planes = torch.stack([(prob.argmax(0) == 2).float(), prob[2]])[None]
    up = F.interpolate(planes, size=rgb.shape[1::-1], mode="nearest-exact")[0]
    return up[0].numpy().T > 0, up[1].numpy().T


@pytest.mark.parametrize("name", ["seg", "classifier"])
def test_isic_folder_matches_evaluate(name, isic, tmp_path):
    """A JPEG folder through the ISIC chain: one CSV row per file with evaluate.yaml's scores; for the pixel-wise
    model the melanoma mask and its boxes in each JPEG's geometry; the datalist route gives the same scores."""
    out = tmp_path / "out"
    network = _checkpoint(name, "isic", out)
    expected = _evaluate_scores(name, "isic", isic["written"], out)
    assert sorted(expected) == sorted(isic["test_ids"])
    workflow = _workflow(name, "isic", "inference", out, input_dir=str(isic["inputs"]), infer_batch_size=3)
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    scores = _csv_scores(out / "scores.csv")
    assert sorted(scores) == sorted(isic["test_ids"])
    for image_id, score in scores.items():
        assert score == pytest.approx(expected[image_id], abs=1e-5)
    if name == "classifier":
        assert not (out / "masks").exists() and not (out / "boxes").exists()
        return
    from scipy import ndimage

    nontrivial = 0
    for image_id in isic["test_ids"]:
        mask, probability = _expected_isic_location(network, isic["inputs"] / f"{image_id}.jpg")
        written = np.asarray(Image.open(out / "masks" / f"{image_id}.png"))
        assert written.shape == (48, 64) == mask.shape  # the JPEG's rows x columns
        np.testing.assert_array_equal(written > 0, mask)
        nontrivial += int(0 < mask.mean() < 1)
        record = json.loads((out / "boxes" / f"{image_id}.json").read_text())
        assert record["shape"] == [48, 64] and record["score"] == pytest.approx(scores[image_id], abs=1e-6)
        labels, _ = ndimage.label(mask, structure=np.ones((3, 3)))
        assert [(b["y0"], b["y1"], b["x0"], b["x1"]) for b in record["boxes"]] == \
            [(r.start, r.stop, c.start, c.stop) for r, c in ndimage.find_objects(labels)]
        for box, index in zip(record["boxes"], range(1, len(record["boxes"]) + 1)):
            assert box["score"] == pytest.approx(probability[labels == index].mean(), abs=1e-5)
    assert nontrivial  # the comparison covered masks with both classes
    # the datalist route (the written PNGs of the test split) reads the same images
    listed = tmp_path / "listed"
    workflow = _workflow(name, "isic", "inference", listed, dataset_dir=str(isic["written"]),
                         ckpt_dir=str(out / "models"))
    workflow.initialize()
    workflow.run()
    workflow.finalize()
    for image_id, score in _csv_scores(listed / "scores.csv").items():
        assert score == pytest.approx(expected[image_id], abs=1e-5)


def _bundle_run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "monai.bundle", "run", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=600)


def _chain_args(name: str, dataset: str, paper_scale: bool) -> list[str]:
    files = [str(Path(f).relative_to(REPO_ROOT)) for f in _files(name, dataset, "inference", paper_scale)]
    return ["--config_file", repr(files), "--meta_file",
            str(registry.meta_file(name, BUNDLES_DIR).relative_to(REPO_ROOT))]


@pytest.mark.slow
def test_siim_paper_scale_dicom_folder(siim, tmp_path):
    """The paper-scale segmentation chain (FlexibleUNet, SE-ResNeXt50 encoder) on a folder of nested SIIM DICOMs
    through ``python -m monai.bundle run``: evaluate.yaml's scores, and a mask and boxes per DICOM in its geometry."""
    out = tmp_path / "out"
    _checkpoint("seg", "siim", out, paper_scale=True)
    proc = _bundle_run([*_chain_args("seg", "siim", True), "--input_dir", str(siim["inputs"]), "--image_size",
                        str(SIZE), "--output_dir", str(out), "--infer_batch_size", "2"])
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    scores = _csv_scores(out / "scores.csv")
    assert sorted(scores) == sorted(siim["test_ids"])
    expected = _evaluate_scores("seg", "siim", siim["written"], out, paper_scale=True)
    for image_id, score in scores.items():
        assert score == pytest.approx(expected[image_id], abs=1e-5)
        mask = np.asarray(Image.open(out / "masks" / f"{image_id}.png"))
        assert mask.shape == (ROWS, COLUMNS) and set(np.unique(mask)) <= {0, 255}
        record = json.loads((out / "boxes" / f"{image_id}.json").read_text())
        assert Path(record["image"]).name == f"{image_id}.dcm" and record["shape"] == [ROWS, COLUMNS]
        for box in record["boxes"]:
            assert 0 <= box["x0"] < box["x1"] <= COLUMNS and 0 <= box["y0"] < box["y1"] <= ROWS
            assert 0.0 <= box["score"] <= 1.0 and box["pixels"] >= 1
            assert (mask[box["y0"]:box["y1"], box["x0"]:box["x1"]] > 0).any()
        assert (mask > 0).sum() == sum(b["pixels"] for b in record["boxes"])


@pytest.mark.slow
def test_empty_input_dir_is_one_line(tmp_path):
    empty = tmp_path / "dicoms"
    empty.mkdir()
    proc = _bundle_run([*_chain_args("seg", "siim", False), "--input_dir", str(empty), "--output_dir",
                        str(tmp_path / "out")])
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == \
        f"error: input_dir {empty}: no input images in it (expected .dcm, .png, .jpg, .jpeg files)"
    assert not (tmp_path / "out" / "scores.csv").exists()
