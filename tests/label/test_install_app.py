"""Laying out the MONAI Label app (spatialspec.label.install, ``spatialspec label-app``)."""

from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from spatialspec.cli.main import main
from spatialspec.label import DEFAULT_METHODS, install_label_app, packaged_app_dir
from tests.label.helpers import REPO_ROOT, bundle_network, write_checkpoints

BUNDLES = REPO_ROOT / "bundles"


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return write_checkpoints(tmp_path_factory.mktemp("checkpoints"))


def test_layout_has_the_app_and_one_exported_bundle_per_model(tmp_path, checkpoints):
    """Each served level is exported self-contained (the source bundles are overlays): its inference.yaml builds the
    network alone, from the app folder, and models/model.pt holds the checkpoint's weights."""
    bundles = tmp_path / "bundles"
    shutil.copytree(BUNDLES, bundles, ignore=shutil.ignore_patterns("eval"))
    (bundles / "segmentation" / "eval" / "models").mkdir(parents=True)  # run outputs of the source: not exported
    (bundles / "segmentation" / "eval" / "models" / "model.pt").write_bytes(b"old")
    app = install_label_app(tmp_path / "app", checkpoints, bundles_dir=bundles)
    assert (app / "main.py").read_text() == (packaged_app_dir() / "main.py").read_text()
    for name in DEFAULT_METHODS:
        folder = app / "model" / name
        for config in ("inference.yaml", "train.yaml", "metadata.json"):
            assert (folder / "configs" / config).is_file()
        assert not (folder / "eval").exists()
        parser = ConfigParser()
        parser.read_config(str(folder / "configs" / "inference.yaml"))
        assert parser["bundle_root"] == "."
        network = parser.get_parsed_content("network_def")
        network.load_state_dict(torch.load(folder / "models" / "model.pt", weights_only=True), strict=True)
        expected = torch.load(checkpoints[name], weights_only=True)
        expected = expected.get("model", expected)
        for key, value in network.state_dict().items():
            assert torch.equal(value, expected[key]), (name, key)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app", "bundles"]  # no staging folder left behind


def test_an_exported_bundle_is_served_under_its_own_name(tmp_path, checkpoints):
    from spatialspec.zoo import export_bundle

    exported = export_bundle("bbox", tmp_path / "exported", bundles_dir=BUNDLES)
    app = install_label_app(tmp_path / "app", {"boxes": checkpoints["bbox"]}, bundles={"boxes": exported})
    folder = app / "model" / "boxes"
    assert (folder / "configs" / "inference.yaml").read_text() == (exported / "configs" / "inference.yaml").read_text()
    assert (folder / "models" / "model.pt").read_bytes() == checkpoints["bbox"].read_bytes()


def test_a_checkpoint_that_does_not_fit_names_the_model(tmp_path, checkpoints):
    wrong = dict(checkpoints, segmentation=checkpoints["binary"])
    with pytest.raises(ValueError, match="--checkpoint segmentation: checkpoint .* does not match the network_def"):
        install_label_app(tmp_path / "app", wrong, bundles_dir=BUNDLES)
    assert not (tmp_path / "app").exists() and list(tmp_path.iterdir()) == []


def test_pickled_objects_are_refused(tmp_path):
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"model": bundle_network("binary")}, unsafe)  # a whole module, not weights
    with pytest.raises(ValueError, match="--checkpoint binary: checkpoint .* refused or unreadable with "
                                         "torch.load.weights_only=True."):
        install_label_app(tmp_path / "app", {"binary": unsafe}, bundles_dir=BUNDLES)


def test_bad_requests_name_the_option(tmp_path, checkpoints):
    with pytest.raises(ValueError, match="unknown model"):
        install_label_app(tmp_path / "app", {"lesion": checkpoints["binary"]}, bundles_dir=BUNDLES)
    with pytest.raises(FileNotFoundError, match="--checkpoint binary: no such file"):
        install_label_app(tmp_path / "app", {"binary": tmp_path / "missing.pt"}, bundles_dir=BUNDLES)
    with pytest.raises(ValueError, match="--checkpoint: name at least one model"):
        install_label_app(tmp_path / "app", {}, bundles_dir=BUNDLES)
    with pytest.raises(FileNotFoundError, match="--bundles-dir .*: no spatialspec bundles there"):
        install_label_app(tmp_path / "app", {"binary": checkpoints["binary"]}, bundles_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="has no configs/inference.yaml"):
        install_label_app(tmp_path / "app", {"lesion": checkpoints["binary"]}, bundles={"lesion": tmp_path})


def test_an_existing_app_is_replaced_only_with_force(tmp_path, checkpoints):
    app = install_label_app(tmp_path / "app", {"binary": checkpoints["binary"]}, bundles_dir=BUNDLES)
    with pytest.raises(ValueError, match="exists; pass --force"):
        install_label_app(app, {"segmentation": checkpoints["segmentation"]}, bundles_dir=BUNDLES)
    assert sorted(p.name for p in (app / "model").iterdir()) == ["binary"]
    install_label_app(app, {"segmentation": checkpoints["segmentation"]}, bundles_dir=BUNDLES, force=True)
    assert sorted(p.name for p in (app / "model").iterdir()) == ["segmentation"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app"]


def test_cli_prints_the_app_and_the_localhost_start_command(tmp_path, checkpoints, capsys):
    assert main(["label-app"]) == 0
    assert capsys.readouterr().out.strip() == str(packaged_app_dir())
    args = ["label-app", "--out", str(tmp_path / "app"), "--bundles-dir", str(BUNDLES)]
    for name, path in checkpoints.items():
        args += ["--checkpoint", f"{name}={path}"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert (f"monailabel start_server --app {tmp_path / 'app'} --studies STUDIES --host 127.0.0.1 --port 8000 "
            "--conf models segmentation,bbox,binary") in out
    assert main(["label-app", "--out", str(tmp_path / "other"), "--checkpoint", "binary"]) == 2
    assert "--checkpoint 'binary' must look like NAME=PATH" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX paths")
def test_serve_outside_the_label_environment_says_how_to_get_it(tmp_path, checkpoints):
    try:
        import monailabel  # noqa: F401
        pytest.skip("monailabel is installed in this environment")
    except ImportError:
        pass
    result = subprocess.run([sys.executable, "-m", "spatialspec", "label-app", "--out", str(tmp_path / "app"),
                             "--checkpoint", f"binary={checkpoints['binary']}", "--serve", "--studies",
                             str(tmp_path)], check=False, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "install.sh --label" in result.stderr
    assert not (tmp_path / "app").exists()


def test_dataset_and_settings_reach_the_served_preprocessing(tmp_path, checkpoints, capsys):
    """``--dataset siim --set image_size=N``: the served preprocessing reads a raw image at the training size N."""
    from PIL import Image

    size = 96
    args = ["label-app", "--out", str(tmp_path / "app"), "--bundles-dir", str(BUNDLES), "--dataset", "siim",
            "--set", f"image_size={size}", "--checkpoint", f"segmentation={checkpoints['segmentation']}"]
    assert main(args) == 0
    folder = tmp_path / "app" / "model" / "segmentation"
    parser = ConfigParser()
    parser.read_config(str(folder / "configs" / "inference.yaml"))
    parser["bundle_root"] = str(folder)
    Image.fromarray(np.arange(40 * 48, dtype=np.uint8).reshape(40, 48)).save(tmp_path / "image.png")
    image = parser.get_parsed_content("preprocessing")({"image": str(tmp_path / "image.png")})["image"]
    assert tuple(image.shape) == (1, size, size)
    capsys.readouterr()
    assert main(["label-app", "--out", str(tmp_path / "other"), "--dataset", "siim", "--set", "image_size",
                 "--checkpoint", f"segmentation={checkpoints['segmentation']}"]) == 2
    assert "--set 'image_size' must look like ID=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "other").exists()
