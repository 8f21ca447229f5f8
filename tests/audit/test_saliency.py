"""Where the model looks (spatialspec.audit.saliency, ``spatialspec audit --saliency``): the shares against a hand
computation, a classifier trained where only the spurious block predicts the label (its Grad-CAM must sit on the
block), the study-folder command on that trained model, and a pixel-wise network through every method."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from monai.networks.nets import ResNet, UNet

from spatialspec.audit import ImageScoreNet, audit_saliency, network_score_fn, region_shares, summarize_shares
from spatialspec.audit.saliency import gradcam_layer, mean_shares, pick_images, saliency_maps
from spatialspec.cli.main import main
from spatialspec.data import SyntheticParams, generate_split

# the abnormality is invisible (mu_a = 0) and, in training, s = y (rho = 1, P(s | y = 0) = 0): only S predicts y
SHORTCUT = SyntheticParams(m=96, n=24, a=4, b=6, mu_y=0.5, rho=1.0, mu_a=0.0, n_val=4, n_test=60)
INPLANES = [4, 8, 8, 8]
ROW_KEYS = {"level", "model", "seed", "run", "share_spurious", "share_abnormality", "share_elsewhere", "n_images"}


def _resnet() -> ResNet:
    return ResNet(block="basic", layers=[1, 1, 1, 1], block_inplanes=INPLANES, spatial_dims=2, n_input_channels=1,
                  num_classes=2)


@pytest.fixture(scope="module")
def shortcut_classifier(tmp_path_factory):
    """A ResNet classifier trained (25 epochs, a few seconds on one CPU core) on SHORTCUT, saved like the bundles."""
    torch.manual_seed(0)
    train = generate_split(SHORTCUT, "training", 0)
    x = torch.as_tensor(np.stack([e["image"] for e in train]))
    y = torch.as_tensor([e["y"] for e in train])
    net = _resnet()
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: one thread is faster on a busy machine
    try:
        for _ in range(25):
            for batch in torch.randperm(len(x)).split(32):
                optimiser.zero_grad()
                torch.nn.functional.cross_entropy(net(x[batch]), y[batch]).backward()
                optimiser.step()
    finally:
        torch.set_num_threads(threads)
    path = tmp_path_factory.mktemp("shortcut") / "model.pt"
    torch.save({"model": net.state_dict()}, path)
    return net.eval(), path


def test_region_shares_by_hand():
    maps = np.array([[[4.0, 1.0, 0.0],
                      [2.0, 3.0, -5.0],   # the negative pixel is clipped to 0
                      [0.0, 0.0, 10.0]]])
    spurious = np.array([[[1, 1, 0], [0, 1, 0], [0, 0, 0]]], bool)
    abnormality = np.array([[[0, 0, 0], [0, 1, 1], [0, 0, 0]]], bool)  # (1, 1) is in both: it counts as S
    # total 4 + 1 + 2 + 3 + 10 = 20; S: 4 + 1 + 3 = 8; Y without S: 0 (the -5); elsewhere: 2 + 10 = 12
    np.testing.assert_allclose(region_shares(maps, spurious, abnormality), [[0.4, 0.0, 0.6]])
    zero = region_shares(np.zeros((1, 3, 3)), spurious, abnormality)
    assert np.isnan(zero).all()  # no positive mass: no shares
    both = np.concatenate([region_shares(maps, spurious, abnormality), zero,
                           region_shares(maps, abnormality, spurious)])  # swapped: (1, 1) now counts as Y... as S
    assert mean_shares(both) == pytest.approx({"share_spurious": (0.4 + 0.15) / 2, "share_abnormality": 0.25 / 2,
                                               "share_elsewhere": 0.6})
    with pytest.raises(ValueError, match="must all be B x H x W"):
        region_shares(maps, spurious[0], abnormality)


def test_summarize_shares_over_seeds():
    rows = [{"level": "binary", "model": "pixel", "share_spurious": s, "share_abnormality": 0.1,
             "share_elsewhere": 0.9 - s} for s in (0.5, 0.7)]
    rows.append({"level": "seg", "model": "pixel", "share_spurious": None, "share_abnormality": None,
                 "share_elsewhere": None})
    binary, seg = summarize_shares(rows)
    assert binary["n_seeds"] == 2 and binary["share_spurious_mean"] == pytest.approx(0.6)
    assert binary["share_spurious_std"] == pytest.approx(np.std([0.5, 0.7], ddof=1))
    assert binary["share_abnormality_std"] == pytest.approx(0.0)
    assert seg == {"level": "seg", "model": "pixel", "n_seeds": 0, **{f"share_{r}_{k}": None for r in
                   ("spurious", "abnormality", "elsewhere") for k in ("mean", "std")}}


def test_pick_images_per_group_and_both_masks():
    test = generate_split(SHORTCUT, "test", 1)
    overlay, shares = pick_images(test, 2, 5)
    groups = [g for _, g in overlay]
    assert groups == [(0, 0)] * 2 + [(0, 1)] * 2 + [(1, 0)] * 2 + [(1, 1)] * 2
    assert all((test[i]["y"], test[i]["s"]) == g for i, g in overlay)
    assert len(shares) == 5 and all(test[i]["y"] == test[i]["s"] == 1 for i in shares)
    assert shares == [i for i, e in enumerate(test) if e["y"] == e["s"] == 1][:5]  # first ones first


def test_image_score_net_is_the_audit_readout():
    torch.manual_seed(0)
    unet = UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=[4, 8], strides=[2], num_res_units=1).eval()
    images = np.random.default_rng(0).normal(size=(3, 1, 16, 16)).astype(np.float32)
    with torch.no_grad():
        wrapped = ImageScoreNet(unet, "topk:5")(torch.as_tensor(images)).numpy()
    np.testing.assert_allclose(wrapped[:, 1], network_score_fn(unet, "topk:5")(images), atol=1e-6)
    np.testing.assert_allclose(wrapped.sum(axis=1), 1.0, atol=1e-6)


def test_shortcut_classifier_looks_at_the_spurious_block(shortcut_classifier):
    net, _ = shortcut_classifier
    test = generate_split(SHORTCUT, "test", 0)
    assert gradcam_layer(net, (1, 24, 24)) == "layer1"  # 12 x 12; layer2 is 6 x 6
    shares = audit_saliency(net, test, "gradcam", per_group=0, max_share_images=12)
    # S covers 36 of 576 pixels (6.25 %), Y 16: uniform saliency would give S 0.0625; Grad-CAM at a 12 x 12 layer
    # spreads a halo around the block (measured: about 0.2 on S, 0.02 on Y)
    assert shares["n_images"] == 12
    assert shares["share_spurious"] > 3 * 36 / 576, shares
    assert shares["share_spurious"] > 5 * shares["share_abnormality"], shares
    # the maps are MONAI's Grad-CAM of class 1, upsampled to the image, without normalisation
    maps = saliency_maps(net, np.stack([e["image"] for e in test[:3]]), "gradcam")
    assert maps.shape == (3, 24, 24) and maps.min() >= 0.0


def test_study_folder(shortcut_classifier, tmp_path, capsys):
    """A study folder with the trained classifier as the binary level of seeds 0 and 1."""
    _, checkpoint = shortcut_classifier
    study = tmp_path / "study"
    records = []
    for seed in (0, 1):
        key = f"binary-classifier-s{seed}"
        (study / "runs" / key / "models").mkdir(parents=True)
        shutil.copy(checkpoint, study / "runs" / key / "models" / "model.pt")
        records += [{"level": "binary", "model": "classifier", "score": score, "seed": seed,
                     "bundle": "binary_classification", "run_key": key} for score in ("mean", "max")]
    (study / "results.json").write_text(json.dumps(records))
    (study / "study.json").write_text(json.dumps({
        "synthetic": SHORTCUT.to_dict(), "datalist": None, "bundles_dir": None,
        "overrides": {"network_def#block_inplanes": INPLANES, "learning_rate": 0.01}}))
    assert main(["audit", "--saliency", "--study", str(study), "--share-images", "10", "--per-group", "1",
                 "--device", "cpu"]) == 0
    assert "binary-classifier-s1: spurious" in capsys.readouterr().out
    out = study / "saliency"
    content = json.loads((out / "saliency.json").read_text())
    assert set(content) == {"method", "rows", "summary", "figures"}
    assert [r["run"] for r in content["rows"]] == ["binary-classifier-s0", "binary-classifier-s1"]
    for row in content["rows"]:
        assert set(row) == ROW_KEYS and row["n_images"] == 10 and row["share_spurious"] > 3 * 36 / 576
    (summary,) = content["summary"]
    assert summary["n_seeds"] == 2 and summary["level"] == "binary" and summary["model"] == "classifier"
    spurious = [r["share_spurious"] for r in content["rows"]]
    assert summary["share_spurious_mean"] == pytest.approx(np.mean(spurious))
    assert summary["share_spurious_std"] == pytest.approx(np.std(spurious, ddof=1))
    assert content["method"]["per_run"] == {"binary-classifier-s0": "gradcam", "binary-classifier-s1": "gradcam"}
    for figure in content["figures"]:
        assert set(figure) == {"path", "level", "model", "seed", "caption"}
        assert (out / figure["path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp"))


@pytest.fixture(scope="module")
def unet_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    unet = UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=[4, 8], strides=[2], num_res_units=1,
                norm="batch")
    path = tmp_path_factory.mktemp("unet") / "model.pt"
    torch.save({"model": unet.state_dict()}, path)
    return path


@pytest.mark.parametrize("method", [None, "input_gradient"])
def test_pixel_wise_checkpoint(method, unet_checkpoint, tmp_path):
    out = tmp_path / "one"
    argv = ["audit", "--saliency", "--bundle", "segmentation", "--checkpoint", str(unet_checkpoint), "--synthetic",
            "n=16", "a=4", "b=4", "n_test=12", "m=4", "n_val=4", "mu_y=0.5", "--set", "network_def#channels=[4,8]",
            "--set", "network_def#strides=[2]", "--share-images", "3", "--per-group", "1", "--out", str(out),
            "--device", "cpu", *(["--saliency-method", method] if method else [])]
    assert main(argv) == 0
    content = json.loads((out / "saliency.json").read_text())
    (row,) = content["rows"]
    assert row["run"] == "model" and row["level"] is None and row["model"] == "segmentation"
    assert content["method"]["per_run"]["model"] == (method or "occlusion")
    shares = [row[k] for k in ("share_spurious", "share_abnormality", "share_elsewhere")]
    assert row["n_images"] == 3 and sum(shares) == pytest.approx(1.0) and min(shares) >= 0.0
    assert (out / "model.png").is_file()


def test_gradcam_needs_a_classifier(unet_checkpoint, tmp_path, capsys):
    argv = ["audit", "--saliency", "--saliency-method", "gradcam", "--bundle", "segmentation", "--checkpoint",
            str(unet_checkpoint), "--synthetic", "n=16", "a=4", "b=4", "n_test=8", "m=4", "n_val=4", "--set",
            "network_def#channels=[4,8]", "--set", "network_def#strides=[2]", "--out", str(tmp_path / "x"),
            "--device", "cpu"]
    assert main(argv) == 2
    assert "'gradcam' explains a classifier's class logit" in capsys.readouterr().err


def test_no_known_regions_gives_null_shares(tmp_path):
    torch.manual_seed(0)
    unet = UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=[4, 8], strides=[2], num_res_units=1).eval()
    entries = [{k: v for k, v in e.items() if k not in ("spurious_mask", "label")}
               for e in generate_split(SyntheticParams(n=16, a=4, b=4, m=4, n_val=4, n_test=16), "test", 0)]
    result = audit_saliency(unet, entries, "input_gradient", per_group=1, overlay_path=tmp_path / "o.png")
    assert result == {"share_spurious": None, "share_abnormality": None, "share_elsewhere": None, "n_images": 0}
    assert (tmp_path / "o.png").is_file()  # the overlays need no masks
