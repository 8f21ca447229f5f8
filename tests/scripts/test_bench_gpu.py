"""scripts/bench_gpu.py (the GPU benchmark of the paper-scale segmentation configuration) and scripts/bench_data.py:
their data generators, and (slow) the GPU benchmark's CPU smoke mode end to end."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from tests.scripts.helpers import ROOT, load_script


def test_synthetic_images_are_noise_plus_labelled_discs():
    images, labels = load_script("bench_gpu").synthetic_images(6, 64, torch.device("cpu"), seed=3, chunk=4)
    assert images.shape == labels.shape == (6, 1, 64, 64)
    assert images.dtype == torch.float16 and labels.dtype == torch.uint8
    disc = labels.bool()
    # every other image holds one disc; the others none
    assert [bool(d.any()) for d in disc] == [False, True, False, True, False, True]
    # noise in [0, 1] (rounded to float16), plus 1 on the disc
    values = images.float()
    assert bool((values[disc] >= 1).all()) and bool((values[~disc] <= 1).all()) and bool((values >= 0).all())
    # a disc is a disc: its area matches pi r^2 for the radius read off its extent
    for d in disc[1::2, 0]:
        rows = d.any(dim=1).nonzero()
        radius = (rows.max() - rows.min() + 1).item() / 2
        assert d.sum().item() == pytest.approx(math.pi * radius**2, rel=0.15)


def test_bench_data_writes_a_loadable_datalist(tmp_path):
    bench = load_script("bench_data")
    path = bench.write_images(tmp_path, 4, 32, "isic")
    content = json.loads(path.read_text())
    assert [e["y"] for e in content["training"]] == [0, 1, 0, 1]
    for entry in content["training"]:
        image = np.asarray(Image.open(tmp_path / entry["image"]))
        mask = np.asarray(Image.open(tmp_path / entry["label"]))
        lesion = np.asarray(Image.open(tmp_path / entry["lesion"]))
        assert image.shape == (32, 32, 3) and lesion.any()
        # the abnormality mask is the lesion of a positive image, empty for a negative one
        np.testing.assert_array_equal(mask, lesion * entry["y"])


@pytest.mark.slow
@pytest.mark.parametrize("augment", ["cpu", "gpu"])
def test_bench_gpu_smoke_on_cpu(augment, tmp_path):
    """The tiny CPU mode runs one epoch of the real configuration (``gpu`` runs the augmentations on the device,
    here the CPU, through the ThreadDataLoader path)."""
    out = tmp_path / "bench.json"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_gpu.py"), "--images", "8", "--size", "64",
                             "--batch-size", "4", "--augment", augment, "--workers", "1", "--warmup", "1",
                             "--json", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["device"] == "cpu" and figures["amp"] == "off" and figures["augment"] == augment
    assert figures["iterations"] == 2  # 8 images, batch 4
    assert figures["images_per_s"] == pytest.approx(8 / figures["epoch_s"])
    assert figures["images_per_s_after_warmup"] > 0 and 0 <= figures["data_share"] <= 1
    assert math.isfinite(figures["final_loss"])
    # the paper-scale network: MONAI's FlexibleUNet with the registered SE-ResNeXt50 encoder
    from monai.networks.nets import FlexibleUNet

    import spatialspec  # noqa: F401

    net = FlexibleUNet(in_channels=1, out_channels=2, backbone="se_resnext50_32x4d", spatial_dims=2)
    assert figures["parameters"] == sum(p.numel() for p in net.parameters())
    assert "images/s" in result.stdout and "data loader" in result.stdout
