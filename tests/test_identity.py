"""Run identity: fingerprints name everything that determines a run's result, and nothing else."""

from __future__ import annotations

import json

import pytest
import torch
from monai.networks.nets import UNet
from monai.transforms import Compose, RandAffined, ScaleIntensityd

from spatialspec.errors import RunIdentityError
from spatialspec.identity import (
    check_fingerprint,
    fingerprint_differences,
    read_fingerprint_file,
    run_fingerprint,
    write_fingerprint_file,
)
from spatialspec.losses import ChannelCrossEntropyLoss

PARAMS = {"bundle": "segmentation", "level": "seg", "seed": 0, "epochs": 50, "datalist": None,
          "synthetic": {"m": 150, "rho": 1.0}}


def _unet(channels=(8, 16)) -> UNet:
    return UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=channels, strides=(2,), num_res_units=0)


def _fingerprint(params=PARAMS, channels=(8, 16), lr=1e-3, settings=None) -> dict:
    network = _unet(channels)
    return run_fingerprint(params, network, ChannelCrossEntropyLoss(), torch.optim.Adam(network.parameters(), lr=lr),
                           settings)


def test_equal_settings_give_equal_fingerprints_whatever_the_weights():
    torch.manual_seed(0)
    first = _fingerprint()
    torch.manual_seed(1)  # other initial weights, other objects: the same run
    second = _fingerprint()
    assert first == second
    json.dumps(first)  # plain JSON
    assert len(first["digest"]) == 64


@pytest.mark.parametrize("change, field", [
    (dict(params={**PARAMS, "level": "binary"}), "level: 'seg' -> 'binary'"),
    (dict(params={**PARAMS, "seed": 1}), "seed: 0 -> 1"),
    (dict(params={**PARAMS, "synthetic": {"m": 150, "rho": 0.9}}), "synthetic.rho: 1.0 -> 0.9"),
    (dict(channels=(8, 32)), "network.sha256"),
    (dict(lr=3e-4), "optimizer.lr: 0.001 -> 0.0003"),
    (dict(settings={"select": "last"}), "settings.select"),
])
def test_each_change_is_named(change, field):
    base, other = _fingerprint(), _fingerprint(**change)
    assert base["digest"] != other["digest"]
    differences = fingerprint_differences(base, other)
    assert any(line.startswith(field) for line in differences), differences
    assert len(differences) == 1, differences


def test_datalist_counts_by_content_not_path(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text('{"training": []}')
    b.write_text('{"training": []}')
    with_a = _fingerprint({**PARAMS, "datalist": str(a)})
    assert with_a == _fingerprint({**PARAMS, "datalist": str(b)})  # same content, other file
    # the synthetic parameters are ignored with a datalist
    assert with_a == _fingerprint({**PARAMS, "datalist": str(a), "synthetic": {"rho": 0.5}})
    b.write_text('{"training": [{"image": "x.png", "y": 1, "s": 0}]}')
    assert fingerprint_differences(with_a, _fingerprint({**PARAMS, "datalist": str(b)}))[0].startswith(
        "datalist_sha256")


def test_transform_settings_count_but_not_their_random_state():
    def pipeline(prob):
        return Compose([ScaleIntensityd(keys="image"), RandAffined(keys="image", prob=prob, rotate_range=0.2)])

    first = run_fingerprint(PARAMS, settings={"augmentation": pipeline(0.5)})
    used = pipeline(0.5)
    used.set_random_state(seed=7)
    assert run_fingerprint(PARAMS, settings={"augmentation": used}) == first
    assert "0x" not in json.dumps(first)  # no memory address
    changed = run_fingerprint(PARAMS, settings={"augmentation": pipeline(0.25)})
    assert any("prob: 0.5 -> 0.25" in line for line in fingerprint_differences(first, changed))


def test_check_fingerprint_message_and_files(tmp_path):
    current = _fingerprint()
    check_fingerprint(current, current, "x")  # equal: nothing to say
    with pytest.raises(RunIdentityError) as raised:
        check_fingerprint(_fingerprint({**PARAMS, "level": "bbox"}), current, "run folder out/",
                          ["another --output_dir", "--resume False"])
    message = str(raised.value)
    assert "\n" not in message and "run folder out/" in message and "level: 'bbox' -> 'seg'" in message
    assert "another --output_dir; or --resume False" in message
    with pytest.raises(RunIdentityError, match="no fingerprint recorded"):
        check_fingerprint(None, current, "x")

    path = write_fingerprint_file(tmp_path / "models" / "fingerprint.json", current)
    assert read_fingerprint_file(path) == current
    assert read_fingerprint_file(tmp_path / "missing.json") is None
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a run fingerprint"):
        read_fingerprint_file(path)
