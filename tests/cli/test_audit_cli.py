"""`spatialspec audit`: a tiny randomly initialised checkpoint audited on tiny synthetic data and a datalist, the
score function against a direct forward pass, and the error paths."""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import torch
from monai.networks.nets import ResNet, UNet

from spatialspec.audit import bundle_score_fn, load_network
from spatialspec.cli.main import main
from spatialspec.data import SyntheticParams, generate_split, write_synthetic_datalist

TINY = ["--synthetic", "n=16", "a=4", "b=4", "n_test=20", "m=20", "n_val=10", "mu_y=0.5"]
UNET_SET = ["--set", "network_def#channels=[4,8]", "--set", "network_def#strides=[2]"]
UNET_OVERRIDES = {"network_def#channels": [4, 8], "network_def#strides": [2]}
RESNET_SET = ["--set", "network_def#block_inplanes=[2,2,2,2]"]


def _unet() -> UNet:
    torch.manual_seed(0)
    return UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=[4, 8], strides=[2], num_res_units=1,
                norm="batch").eval()


@pytest.fixture(scope="module")
def unet_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "unet.pt"
    torch.save({"model": _unet().state_dict()}, path)
    return path


def test_audit_json_and_files(unet_checkpoint, tmp_path, capsys):
    out = tmp_path / "audit"
    argv = ["audit", "--bundle", "segmentation", "--checkpoint", str(unet_checkpoint), *TINY, *UNET_SET,
            "--seed", "1", "--json", "--out", str(out)]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)
    for key in ("bundle", "checkpoint", "data", "score", "seed", "n", "n_with_spurious", "n_without_spurious",
                "mean_abs_shift", "insertion", "removal", "auroc_original", "auroc_removed", "auroc_inserted"):
        assert key in summary, key
    for key in ("n", "mean", "median", "std", "mean_abs", "min", "max", "quantiles"):
        assert key in summary["insertion"] and key in summary["removal"], key
    test = generate_split(SyntheticParams(n=16, a=4, b=4, n_test=20, m=20, n_val=10, mu_y=0.5), "test", 1)
    assert summary["n"] == 20 and summary["n_with_spurious"] == sum(e["s"] for e in test)
    assert summary["insertion"]["n"] + summary["removal"]["n"] == 20
    written = json.loads((out / "audit.json").read_text())
    assert {k: v for k, v in written.items() if k != "images"} == summary
    images = written["images"]
    assert [r["id"] for r in images] == [e["id"] for e in test]
    # the original scores are the network's mean class-1 probability, computed here directly
    with torch.no_grad():
        prob = torch.softmax(_unet()(torch.as_tensor(np.stack([e["image"] for e in test]))), dim=1)[:, 1]
    np.testing.assert_allclose([r["score_original"] for r in images], prob.mean(dim=(1, 2)).numpy(), atol=1e-5)
    deltas = np.array([r["delta"] for r in images])
    assert summary["mean_abs_shift"] == pytest.approx(np.abs(deltas).mean())
    assert (out / "score_shift.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(out.glob(".*.tmp"))


def test_audit_table_and_classifier_bundle_with_bare_state_dict(tmp_path, capsys):
    torch.manual_seed(0)
    net = ResNet(block="basic", layers=[1, 1, 1, 1], block_inplanes=[2, 2, 2, 2], spatial_dims=2, n_input_channels=1,
                 num_classes=2).eval()
    ckpt = tmp_path / "resnet.pt"
    torch.save(net.state_dict(), ckpt)
    assert main(["audit", "--bundle", "binary_classification", "--checkpoint", str(ckpt), *TINY, *RESNET_SET,
                 "--score", "max"]) == 0
    printed = capsys.readouterr().out
    assert "insert S" in printed and "remove S" in printed and "AUROC original" in printed
    # the classifier's score is its softmax class-1 probability
    score = bundle_score_fn("binary_classification", ckpt, "max", {"network_def#block_inplanes": [2, 2, 2, 2]},
                            device="cpu")
    images = np.random.default_rng(0).normal(size=(3, 1, 16, 16)).astype(np.float32)
    with torch.no_grad():
        expected = torch.softmax(net(torch.as_tensor(images)), dim=1)[:, 1].numpy()
    np.testing.assert_allclose(score(images), expected, atol=1e-6)


def test_audit_on_a_datalist(unet_checkpoint, tmp_path, capsys):
    params = SyntheticParams(n=16, a=4, b=4, n_test=12, m=4, n_val=4, mu_y=0.5)
    datalist = write_synthetic_datalist(tmp_path / "data", params, seed=2)
    assert main(["audit", "--bundle", "segmentation", "--checkpoint", str(unet_checkpoint), "--datalist",
                 str(datalist), "--seed", "2", *UNET_SET, "--json"]) == 0
    from_files = json.loads(capsys.readouterr().out)
    assert from_files["n"] == 12
    # NIfTI keeps exact floats: the same audit as on the in-memory arrays
    assert main(["audit", "--bundle", "segmentation", "--checkpoint", str(unet_checkpoint), "--synthetic",
                 "n=16", "a=4", "b=4", "n_test=12", "m=4", "n_val=4", "mu_y=0.5", "--seed", "2", *UNET_SET,
                 "--json"]) == 0
    from_arrays = json.loads(capsys.readouterr().out)
    for key in ("mean_abs_shift", "auroc_original", "auroc_removed"):
        assert from_files[key] == pytest.approx(from_arrays[key], abs=1e-5), key


def test_load_network_errors(unet_checkpoint, tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint file not found"):
        load_network("segmentation", tmp_path / "nope.pt")
    with pytest.raises(ValueError, match="does not fit network_def"):
        load_network("segmentation", unet_checkpoint)  # the bundle's default channels
    bad = tmp_path / "bad.pt"
    bad.write_text("not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt: not a PyTorch checkpoint"):
        load_network("segmentation", bad, UNET_OVERRIDES)
    with pytest.raises(FileNotFoundError, match="bundle 'nobundle' not found"):
        load_network("nobundle", unet_checkpoint)
    with pytest.raises(ValueError, match="only network_def keys"):
        load_network("segmentation", unet_checkpoint, {"epochs": 3})
    module_prefixed = tmp_path / "ddp.pt"
    torch.save({f"module.{k}": v for k, v in _unet().state_dict().items()}, module_prefixed)
    assert isinstance(load_network("segmentation", module_prefixed, UNET_OVERRIDES), UNet)


@pytest.mark.parametrize("extra, message", [
    (["--checkpoint", "missing.pt"], "--checkpoint: file not found"),
    (["--synthetic", "rho=0", "--split", "training"], "no entry has a spurious feature"),
    (["--synthetic", "rho=1", "mu_y=1", "--split", "training"], "every entry has a spurious feature"),
    (["--score", "median"], "unknown score"),
    (["--set", "network_def#channels"], "must look like KEY=VALUE"),
])
def test_cli_errors(extra, message, unet_checkpoint, capsys):
    argv = ["audit", "--bundle", "segmentation", "--checkpoint", str(unet_checkpoint), *TINY, *UNET_SET, *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_needs_spurious_masks(unet_checkpoint, tmp_path, capsys):
    datalist = write_synthetic_datalist(tmp_path / "data", SyntheticParams(n=16, a=4, b=4, n_test=4, m=2, n_val=2))
    content = json.loads(datalist.read_text())
    for entry in content["test"]:
        del entry["spurious_mask"]
    datalist.write_text(json.dumps(content))
    assert main(["audit", "--bundle", "segmentation", "--checkpoint", str(unet_checkpoint), "--datalist",
                 str(datalist), *UNET_SET]) == 2
    assert "the audit needs spurious masks" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--saliency", "--study", "{tmp}"], "results.json not found: RESULTS must be the --out folder of `spatialspec "
                                         "study`"),
    (["--saliency", "--study", "{tmp}/none"], "study folder not found"),
    (["--saliency", "--bundle", "segmentation"], "--saliency needs --study STUDY_DIR, or --bundle, --checkpoint and "
                                                 "--out"),
    (["--saliency", "--study", "{tmp}", "--bundle", "segmentation"], "--study takes each run's bundle"),
    (["--study", "{tmp}"], "--study applies to --saliency only"),
    (["--checkpoint", "x.pt"], "the audit needs --bundle and --checkpoint"),
    (["--saliency", "--per-group", "-1"], "--per-group"),
])
def test_saliency_bad_input(argv, message, tmp_path, capsys):
    """Bad input to ``audit --saliency``: one line naming the folder or option, nothing written."""
    with pytest.raises(SystemExit) if "--per-group" in argv else contextlib.nullcontext():
        assert main(["audit", *[a.replace("{tmp}", str(tmp_path)) for a in argv]]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "saliency").exists()
