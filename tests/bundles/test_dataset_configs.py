"""The data set configs (bundles/common/configs/{siim,isic}.yaml, merged after every level's and method's configs by
:func:`spatialspec.registry.config_files`) on SIIM-ACR and ISIC 2018 fixtures written by the real readers
(``spatialspec data siim|isic``), App. A.1 / Sec. 5 of Saab et al. 2022.

In-process: every config's preprocessing against an independent computation from the PNG files (intensity scaling,
any-positive resizing, the level's supervision, ISIC's three classes), the compact cache, the network's channels, the
melanoma readout and ISIC's checkpoint metric. Slow: one short epoch of every config through
``python -m monai.bundle run``, and paper-scale runs followed by evaluation.
"""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.data import CacheDataset
from PIL import Image
from scipy import ndimage

from spatialspec import registry
from spatialspec.data.isic import write_isic_datalist
from spatialspec.data.siim import write_siim_datalist
from tests.fixtures_real import make_isic, make_siim, write_tubes

REPO_ROOT = Path(__file__).resolve().parents[2]
BUNDLES_DIR = REPO_ROOT / "bundles"
NAMES = ("seg", "bbox", "classifier", "jtt", "george", "rrr", "mixed")
DATASETS = ("siim", "isic")
CASES = [(n, d) for n in NAMES for d in DATASETS]
WRITTEN = 64  # side of the written PNGs
SIDE = 32  # image_size of the runs: an exact 2 x 2 block mean / any-positive pooling of the written files
STATS = {"siim": ([0.449], [0.226]), "isic": ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])}
# the one-epoch runs' own settings: the two-stage bundles' first stage, and a mix of masks and boxes for mixed
RUN_ARGS = {"jtt": ["--erm_epochs", "1"], "george": ["--erm_epochs", "1", "--reducer", "pca"],
            "mixed": ["--location_labels", "4", "--location_mix", "{'seg': 2, 'bbox': 2}"]}


@pytest.fixture(scope="module")
def real_data(tmp_path_factory) -> dict[str, Path]:
    """``{"siim": folder, "isic": folder}``, each holding a datalist.json written by the project's readers."""
    tmp = tmp_path_factory.mktemp("real")
    siim_root = tmp / "siim_source"
    truth = make_siim(siim_root)
    ids = list(truth["y"])
    tubes = write_tubes(siim_root / "tubes.csv", ids[:8], [1, 0, 0, 1, 1, 1, 0, 0])
    siim = write_siim_datalist(siim_root, tmp / "siim", tubes=tubes, size=WRITTEN).parent
    isic_root = tmp / "isic_source"
    isic_truth = make_isic(isic_root)
    with pytest.warns(UserWarning, match="also training images"):
        isic = write_isic_datalist(isic_root, isic_truth["trap"], tmp / "isic", seed=1, size=WRITTEN).parent
    return {"siim": siim, "isic": isic}


def _files(name: str, dataset: str, kind: str = "train", paper_scale: bool = False) -> list[Path]:
    return registry.config_files(name, kind, dataset=dataset, paper_scale=paper_scale, bundles_dir=BUNDLES_DIR)


def _classifier(name: str) -> bool:
    return registry.method(name).family == "classifier"


def _parser(name: str, dataset: str, overrides: dict) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(f) for f in _files(name, dataset)])
    for key, value in overrides.items():
        parser[key] = value
    return parser


def _png(path: Path) -> np.ndarray:
    """A PNG as MONAI's PILReader loads it, channel first: C x W x H (the upright image transposed)."""
    array = np.asarray(Image.open(path), dtype=np.float64)
    return array.T[None] if array.ndim == 2 else array.transpose(2, 1, 0)


def _block_mean(x: np.ndarray) -> np.ndarray:
    c, h, w = x.shape
    return x.reshape(c, h // 2, 2, w // 2, 2).mean(axis=(2, 4))


def _block_any(x: np.ndarray) -> np.ndarray:
    c, h, w = x.shape
    return x.reshape(c, h // 2, 2, w // 2, 2).any(axis=(2, 4))


def _boxes(mask: np.ndarray) -> np.ndarray:
    """One filled box per 8-connected component (scipy), independently of spatialspec's bbox level."""
    out = np.zeros_like(mask)
    components, _ = ndimage.label(mask[0], structure=np.ones((3, 3)))
    for rows, cols in ndimage.find_objects(components):
        out[0, rows, cols] = True
    return out


def _expected(name: str, dataset: str, entry: dict) -> tuple[np.ndarray, np.ndarray | int]:
    mean, std = (np.asarray(v)[:, None, None] for v in STATS[dataset])
    image = (_block_mean(_png(Path(entry["image"]))) / 255.0 - mean) / std
    if _classifier(name):
        return image, entry["y"]
    mask = _block_any(_png(Path(entry["lesion" if dataset == "isic" else "label"])) > 0)
    if name == "bbox":
        mask = _boxes(mask)
    return image, mask * (1 + entry["y"] if dataset == "isic" else 1)


@pytest.mark.parametrize("name, dataset", CASES)
def test_preprocessing_matches_the_files(name, dataset, real_data):
    folder = real_data[dataset]
    parser = _parser(name, dataset, {"dataset_dir": str(folder), "image_size": SIDE, "cache_workers": 1})
    # dataset_dir is the input; the datalist is derived from it
    assert parser.get_parsed_content("datalist") == str(folder / "datalist.json")
    content = json.loads((folder / "datalist.json").read_text())
    dataset_obj = parser.get_parsed_content("train#dataset")
    assert isinstance(dataset_obj, CacheDataset) and len(dataset_obj) == len(content["training"])
    entries = parser.get_parsed_content("train#data")
    positives = 0
    for i, entry in enumerate(entries):
        item = dataset_obj[i]
        image, label = _expected(name, dataset, entry)
        assert item["image"].dtype == torch.float32 and tuple(item["image"].shape) == image.shape
        # the cache holds float16: the normalised 8-bit values are kept to about 1e-3
        np.testing.assert_allclose(item["image"].numpy(), image, atol=4e-3, rtol=1e-3)
        if _classifier(name):
            assert int(item["label"]) == label == entry["y"]
        if registry.method(name).cost_label == "level" and _classifier(name):
            # the classifier guided by location labels keeps the level's supervision (seg: the mask) as `location`
            mask = _block_any(_png(Path(entry["lesion" if dataset == "isic" else "label"])) > 0)
            np.testing.assert_array_equal(item["location"].numpy().astype(bool), mask)
            positives += int(mask.any())
        elif not _classifier(name):
            np.testing.assert_array_equal(item["label"].numpy(), label.astype(np.float32))
            positives += int(label.any())
        # compact cache: 16-bit images (and 8-bit labels for the pixel-wise bundles)
        cached = dataset_obj._cache[i]
        assert cached["image"].dtype == torch.float16
        if not _classifier(name):
            assert cached["label"].dtype == torch.uint8
    if not registry.method(name).image_labels_only:
        assert positives > 0  # the comparison covered non-empty supervision
    # the network takes the data set's channels and, for ISIC pixel-wise, gives three classes
    batch = torch.stack([dataset_obj[i]["image"] for i in range(2)])
    out = parser.get_parsed_content("network_def")(batch)
    classes = 3 if dataset == "isic" and not _classifier(name) else 2
    assert tuple(out.shape[:2]) == (2, classes)


@pytest.mark.parametrize("dataset", DATASETS)
def test_mixed_supervision_gives_each_image_its_own_level(dataset, real_data):
    folder = real_data[dataset]
    n_train = len(json.loads((folder / "datalist.json").read_text())["training"])
    mix = {"seg": 2, "bbox": 2}
    parser = _parser("mixed", dataset, {"dataset_dir": str(folder), "image_size": SIDE, "cache_workers": 1,
                                        "location_labels": 4, "location_mix": mix})
    assert parser.get_parsed_content("free_negatives") is (dataset == "siim")  # ISIC's benign lesions are not free
    entries = parser.get_parsed_content("train#data")
    dataset_obj = parser.get_parsed_content("train#dataset")
    assert len(entries) == len(dataset_obj) == n_train  # every image trains, located or not
    levels = [e["location_level"] for e in entries]
    assert levels.count("bbox") >= 2 and "binary" in levels and levels.count("seg") >= 2
    for i, entry in enumerate(entries):
        name = entry["location_level"]
        mask = _block_any(_png(Path(entry["lesion" if dataset == "isic" else "label"])) > 0)
        expected = np.zeros_like(mask) if name == "binary" else _boxes(mask) if name == "bbox" else mask
        expected = expected * (1 + entry["y"] if dataset == "isic" else 1)
        np.testing.assert_array_equal(dataset_obj[i]["label"].numpy(), expected.astype(np.float32), err_msg=name)
        assert dataset_obj[i]["has_location"] == int(name != "binary")


@pytest.mark.parametrize("name", ["seg", "bbox"])
def test_isic_score_is_the_melanoma_channel(name, real_data):
    parser = _parser(name, "isic", {"dataset_dir": str(real_data["isic"])})
    post = parser.get_parsed_content("validate#postprocessing")
    probs = torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])  # background, benign lesion, melanoma
    logits = torch.log(probs)[:, :, None, None].expand(2, 3, 4, 4)
    out = post({"pred": logits})
    np.testing.assert_allclose(out["score"].numpy(), [0.5, 0.1], rtol=1e-5)


@pytest.mark.parametrize("name", ["jtt", "george"])
def test_isic_selects_on_overall_auroc(name, real_data):
    """ISIC's validation split has no robust subset (trap rule: s = y there): the checkpoint follows the overall
    AUROC; SIIM keeps the method's robust-AUROC selection."""
    isic = _parser(name, "isic", {"dataset_dir": str(real_data["isic"])})
    content = json.loads((real_data["isic"] / "datalist.json").read_text())
    assert all(e["s"] == e["y"] for e in content["validation"])
    (metric, handler), = isic.get_parsed_content("validate#key_metric").items()
    assert metric == "val_overall_auroc" and handler.key == "overall_auroc"
    siim = _parser(name, "siim", {"dataset_dir": str(real_data["siim"])})
    (metric, handler), = siim.get_parsed_content("validate#key_metric").items()
    assert metric == "val_robust_auroc" and handler.key == "robust_auroc"


def test_missing_dataset_dir_names_the_datalist(tmp_path):
    parser = _parser("seg", "siim", {"dataset_dir": str(tmp_path / "nothing")})
    with pytest.raises(RuntimeError) as info:  # MONAI wraps the expression's error
        parser.get_parsed_content("train#data")
    assert isinstance(info.value.__cause__, FileNotFoundError)
    assert str(tmp_path / "nothing" / "datalist.json") in str(info.value.__cause__)


# ---------------------------------------------------------------------------------------------------------------
# slow: the configs driven as a user drives them
# ---------------------------------------------------------------------------------------------------------------


def _config_arg(files: list[Path]) -> str:
    """``--config_file``: the chain relative to the repository root, as a list literal (python-fire parses it into a
    list; MONAI 1.6.1 refuses a comma-joined string)."""
    return repr([str(f.relative_to(REPO_ROOT)) for f in files])


def _meta_arg(name: str) -> str:
    return str(registry.meta_file(name, BUNDLES_DIR).relative_to(REPO_ROOT))


def _run(args: list[str], log: Path) -> tuple[int, str]:
    with open(log, "w") as out:
        proc = subprocess.run([sys.executable, "-m", "monai.bundle", *args], cwd=REPO_ROOT, stdout=out,
                              stderr=subprocess.STDOUT, timeout=600)
    return proc.returncode, log.read_text(errors="replace")


def _train_args(name: str, files: list[Path], dataset_dir: Path, out: Path) -> list[str]:
    return ["run", "--config_file", _config_arg(files), "--meta_file", _meta_arg(name), "--dataset_dir",
            str(dataset_dir), "--image_size", str(SIDE), "--epochs", "1", "--batch_size", "4", "--val_batch_size", "4",
            "--output_dir", str(out), *RUN_ARGS.get(name, [])]


@pytest.fixture(scope="module")
def one_epoch_runs(real_data, tmp_path_factory) -> dict:
    """Every (level or method, data set) config for one epoch, two runs at a time (most of a run is importing
    MONAI)."""
    tmp = tmp_path_factory.mktemp("runs")

    def job(case):
        name, dataset = case
        out = tmp / f"{name}_{dataset}"
        args = _train_args(name, _files(name, dataset), real_data[dataset], out)
        return case, (*_run(args, tmp / f"{name}_{dataset}.log"), out)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(pool.map(job, CASES))


@pytest.mark.slow
@pytest.mark.parametrize("name, dataset", CASES)
def test_one_epoch_through_monai_bundle_run(name, dataset, one_epoch_runs, real_data):
    returncode, output, out = one_epoch_runs[name, dataset]
    assert returncode == 0, output[-6000:]
    assert (out / "models" / "model.pt").is_file(), output[-3000:]
    n_train = len(json.loads((real_data[dataset] / "datalist.json").read_text())["training"])
    iterations = math.ceil(n_train / 4)
    # the data set's training images were read (the ERM stage of JTT/GEORGE reads them as they are)
    assert re.search(rf"Iter: {iterations}/{iterations}\b", output), output[-3000:]


@pytest.mark.slow
def test_paper_scale_isic_segmentation_train_and_evaluate(real_data, tmp_path):
    """The pixel-wise chain + paper_scale.yaml + isic.yaml (three-class FlexibleUNet, mean-Dice checkpoint), then
    evaluate.yaml: the test AUROC is the melanoma-channel readout of the checkpoint, and robust = overall on ISIC
    (Sec. 5)."""
    name, out = "seg", tmp_path / "out"
    files = _files(name, "isic", paper_scale=True)
    code, output = _run(_train_args(name, files, real_data["isic"], out), tmp_path / "train.log")
    assert code == 0, output[-6000:]
    assert "Key metric: val_mean_dice" in output, output[-3000:]
    code, output = _run(["run", "--config_file", _config_arg(_files(name, "isic", "evaluate", paper_scale=True)),
                         "--meta_file", _meta_arg(name), "--dataset_dir", str(real_data["isic"]),
                         "--image_size", str(SIDE), "--val_batch_size", "4", "--output_dir", str(out)],
                        tmp_path / "evaluate.log")
    assert code == 0, output[-6000:]
    with open(out / "metrics.csv", newline="") as f:
        metrics = {row[0]: float(row[1]) for row in csv.reader(f) if row}
    assert metrics["test_robust_auroc"] == pytest.approx(metrics["test_overall_auroc"])

    from monai.networks.nets import FlexibleUNet
    from sklearn.metrics import roc_auc_score

    net = FlexibleUNet(in_channels=3, out_channels=3, backbone="se_resnext50_32x4d", spatial_dims=2)
    net.load_state_dict(torch.load(out / "models" / "model.pt", map_location="cpu", weights_only=True))
    net.eval()
    test = json.loads((real_data["isic"] / "datalist.json").read_text())["test"]
    images = []
    for entry in test:
        image, _ = _expected(name, "isic", {**entry, "image": real_data["isic"] / entry["image"],
                                              "lesion": real_data["isic"] / entry["lesion"]})
        images.append(torch.from_numpy(image.astype(np.float32)).half().float())
    with torch.no_grad():
        probs = torch.softmax(net(torch.stack(images)), dim=1)
    y = [e["y"] for e in test]
    assert 0 < sum(y) < len(y)
    melanoma = probs[:, 2].mean(dim=(1, 2)).numpy()
    assert metrics["test_overall_auroc"] == pytest.approx(roc_auc_score(y, melanoma), abs=1e-9)


@pytest.mark.slow
def test_paper_scale_binary_siim(real_data, tmp_path):
    """The classifier chain + paper_scale.yaml + siim.yaml: ResNet-50 on one-channel CXR, checkpoint on validation
    AUROC."""
    out = tmp_path / "out"
    code, output = _run(_train_args("classifier", _files("classifier", "siim", paper_scale=True), real_data["siim"],
                                    out), tmp_path / "train.log")
    assert code == 0, output[-6000:]
    assert "Key metric: val_overall_auroc" in output, output[-3000:]
    assert (out / "models" / "model.pt").is_file()
