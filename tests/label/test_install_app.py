"""Laying out the MONAI Label app (spatialspec.label.install, ``spatialspec label-app``)."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys

import pytest
import torch

from spatialspec.cli.main import main
from spatialspec.label import DEFAULT_BUNDLES, install_label_app, packaged_app_dir
from tests.label.helpers import REPO_ROOT, bundle_network, write_checkpoints

BUNDLES = REPO_ROOT / "bundles"


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return write_checkpoints(tmp_path_factory.mktemp("checkpoints"))


def test_layout_has_the_app_and_one_bundle_per_model(tmp_path, checkpoints):
    bundles = tmp_path / "bundles"
    for bundle in DEFAULT_BUNDLES.values():
        shutil.copytree(BUNDLES / bundle, bundles / bundle)
        (bundles / bundle / "eval" / "models").mkdir(parents=True, exist_ok=True)  # run outputs: not copied
        (bundles / bundle / "eval" / "models" / "model.pt").write_bytes(b"old")
    app = install_label_app(tmp_path / "app", checkpoints, bundles_dir=bundles)
    assert (app / "main.py").read_text() == (packaged_app_dir() / "main.py").read_text()
    for name, bundle in DEFAULT_BUNDLES.items():
        folder = app / "model" / name
        for config in ("inference.yaml", "train.yaml", "metadata.json"):
            assert (folder / "configs" / config).read_text() == (BUNDLES / bundle / "configs" / config).read_text()
        assert _sha(folder / "models" / "model.pt") == _sha(checkpoints[name])
        assert not (folder / "eval").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["app", "bundles"]  # no staging folder left behind


def test_a_checkpoint_that_does_not_fit_names_the_model(tmp_path, checkpoints):
    wrong = dict(checkpoints, segmentation=checkpoints["binary"])
    with pytest.raises(ValueError, match="--checkpoint segmentation: checkpoint .* does not match the network_def"):
        install_label_app(tmp_path / "app", wrong, bundles_dir=BUNDLES)
    assert not (tmp_path / "app").exists() and list(tmp_path.iterdir()) == []


def test_pickled_objects_are_refused(tmp_path):
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"model": bundle_network("binary")}, unsafe)  # a whole module, not weights
    with pytest.raises(ValueError, match="--checkpoint binary: checkpoint .* refused or unreadable with torch.load.weights_only=True."):
        install_label_app(tmp_path / "app", {"binary": unsafe}, bundles_dir=BUNDLES)


def test_bad_requests_name_the_option(tmp_path, checkpoints):
    with pytest.raises(ValueError, match="unknown model"):
        install_label_app(tmp_path / "app", {"lesion": checkpoints["binary"]}, bundles_dir=BUNDLES)
    with pytest.raises(FileNotFoundError, match="--checkpoint binary: no such file"):
        install_label_app(tmp_path / "app", {"binary": tmp_path / "missing.pt"}, bundles_dir=BUNDLES)
    with pytest.raises(ValueError, match="--checkpoint: name at least one model"):
        install_label_app(tmp_path / "app", {}, bundles_dir=BUNDLES)
    with pytest.raises(FileNotFoundError, match="has no configs/inference.yaml"):
        install_label_app(tmp_path / "app", {"binary": checkpoints["binary"]}, bundles_dir=tmp_path)


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
