"""MONAI Label serves a paper-scale SIIM-ACR checkpoint with its training preprocessing (issue 16): ``spatialspec
label-app --dataset siim --paper-scale`` exports the paper-scale network with the SIIM configs, a real ``monailabel
start_server`` lists a 1024 x 1024 DICOM of the studies folder, and ``/infer/segmentation`` answers with a mask of the
DICOM's rows x columns, computed on the training grid (``image_size``) and equal to the bundle's own pipeline.

One server start, one image: the network is a seeded random init of the paper-scale UNet (34 M parameters), on CPU.
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import requests
import torch
from monai.bundle import ConfigParser
from PIL import Image
from pydicom.uid import generate_uid

from spatialspec.cli.main import main
from tests.fixtures_real import write_dicom
from tests.label.helpers import MONAILABEL, REPO_ROOT, bundle_network, multipart, running_server

BUNDLES = REPO_ROOT / "bundles"
ROWS, COLUMNS = 1024, 1024  # SIIM-ACR's DICOMs


@pytest.fixture(scope="module")
def paper_checkpoint(tmp_path_factory):
    """A seeded random init of the paper-scale SIIM segmentation network, as a bare state dict."""
    torch.manual_seed(16)
    path = tmp_path_factory.mktemp("paper") / "segmentation.pt"
    torch.save(bundle_network("segmentation", "siim", paper_scale=True).state_dict(), path)
    return path


@pytest.mark.slow
def test_a_paper_scale_checkpoint_needs_its_configuration(tmp_path, paper_checkpoint, capsys):
    """Without --paper-scale the default network is exported: the checkpoint is refused, naming the mismatch and the
    options that select the configuration it was trained with."""
    args = ["label-app", "--out", str(tmp_path / "app"), "--bundles-dir", str(BUNDLES), "--dataset", "siim",
            "--checkpoint", f"segmentation={paper_checkpoint}"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "--checkpoint segmentation: checkpoint" in err and "does not match the network_def" in err
    assert "exported as the default-size network for SIIM data" in err and "--paper-scale" in err
    assert not (tmp_path / "app").exists()


def _reference(model_dir, image):
    """The exported bundle's own pipeline on ``image``, in this process: its preprocessing, network, softmax and
    image score; returns (score, argmax mask on the network's grid, that grid)."""
    parser = ConfigParser()
    parser.read_config(str(model_dir / "configs" / "inference.yaml"))
    parser["bundle_root"] = str(model_dir)
    data = parser.get_parsed_content("preprocessing")({"image": str(image)})
    network = parser.get_parsed_content("network_def")
    network.load_state_dict(torch.load(model_dir / "models" / "model.pt", weights_only=True), strict=True)
    network.eval()
    with torch.no_grad():
        data["pred"] = network(data["image"][None])[0]
    data = parser.get_parsed_content("infer_score")(parser.get_parsed_content("infer_activation")(data))
    grid = tuple(int(s) for s in data["image"].shape[1:])
    return float(torch.as_tensor(data["score"]).reshape(-1)[0]), data["pred"].argmax(0).numpy(), grid


@pytest.mark.label
@pytest.mark.slow
def test_infer_serves_a_paper_scale_siim_checkpoint_in_the_dicom_geometry(tmp_path_factory, paper_checkpoint,
                                                                           capsys):
    if not MONAILABEL.exists():
        pytest.skip(f"the MONAI Label environment is not installed ({MONAILABEL} missing): "
                    "run `bash scripts/install.sh --label`")
    root = tmp_path_factory.mktemp("paper_label")
    app = root / "app"
    assert main(["label-app", "--out", str(app), "--bundles-dir", str(BUNDLES), "--dataset", "siim",
                 "--paper-scale", "--checkpoint", f"segmentation={paper_checkpoint}"]) == 0
    assert "--conf models segmentation" in capsys.readouterr().out
    model_dir = app / "model" / "segmentation"
    exported = ConfigParser()
    exported.read_config(str(model_dir / "configs" / "train.yaml"))
    image_size = int(exported["image_size"])

    # a SIIM-ACR DICOM (8-bit MONOCHROME2, 1024 x 1024, named by its SOPInstanceUID): dark and bright blocks, taller
    # than wide, so that the network's mask is not symmetric and a transposed one shows
    uid = generate_uid(prefix="1.2.276.0.7230010.3.1.4.")
    rows, columns = np.mgrid[:ROWS, :COLUMNS]
    blocks = np.where((rows // (ROWS // 4) + columns // (COLUMNS // 8)) % 2 == 0, 30.0, 220.0)
    pixels = blocks + np.random.default_rng(16).normal(0, 5, size=(ROWS, COLUMNS))
    dicom = root / "studies" / f"{uid}.dcm"
    write_dicom(dicom, np.clip(pixels, 0, 255).astype(np.uint8), uid)

    with running_server(app, dicom.parent, root, ["segmentation"]) as server:
        assert server["info"]["datastore"]["total"] == 1
        response = requests.post(f"{server['url']}/infer/segmentation", params={"image": uid, "output": "all"},
                                 timeout=600)
        assert response.status_code == 200, response.text
    parts = multipart(response)
    params = json.loads(parts["params"])
    label = np.asarray(Image.open(io.BytesIO(parts["image"])))

    # in the DICOM's geometry (rows x columns), computed on the training grid
    assert label.shape == (ROWS, COLUMNS)
    assert set(np.unique(label)) <= {0, 1}
    assert params["inference_shape"] == [image_size, image_size] != [ROWS, COLUMNS]
    # the same probability and mask as the exported bundle's own pipeline; the mask is the network's, resized back
    # by nearest neighbour (each network pixel covers step x step DICOM pixels) and laid out upright (rows first)
    score, mask, grid = _reference(model_dir, dicom)
    assert grid == (image_size, image_size)
    assert params["abnormal_probability"] == pytest.approx(score, abs=1e-5)
    step = ROWS // image_size
    assert np.mean(mask != mask.T) > 0.1  # a mask whose orientation shows
    assert np.mean(label[::step, ::step].T != mask) < 1e-3
    assert np.mean(label[step - 1::step, step - 1::step].T != mask) < 1e-3
