"""Loading a bundle's network from a checkpoint (weights only) and the bundle's test data loader."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from monai.networks.nets import UNet

from spatialspec import registry
from spatialspec.data import load_split
from spatialspec.embeddings import (
    bundle_parser,
    bundle_test_loader,
    extract_embeddings,
    load_bundle_network,
    load_checkpoint_state,
)
from spatialspec.study import find_bundles_dir

SEG = find_bundles_dir() / "segmentation"
# the segmentation level's config chains (the bundle folder is an overlay: its train.yaml alone defines no data)
TRAIN = tuple(registry.config_files("seg", bundles_dir=SEG.parent))
EVALUATE = tuple(registry.config_files("seg", "evaluate", bundles_dir=SEG.parent))
# a small network_def of the segmentation bundle (same UNet class, fewer channels)
TINY = {"network_def#channels": [4, 8], "network_def#strides": [2]}
TINY_DATA = {"synthetic": {"n": 16, "a": 4, "b": 4, "m": 8, "n_val": 4, "n_test": 12, "mu_y": 0.5}, "seed": 3}


def _tiny_unet(channels=(4, 8)) -> UNet:
    torch.manual_seed(0)
    # the bundle's network_def with TINY's overrides: spatial_dims 2, 1 -> 2 channels, one residual unit, batch norm
    net = UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=channels, strides=(2,), num_res_units=1,
               norm="batch")
    with torch.no_grad():  # non-default buffers too, so that a load that skips them would be caught
        for buffer in net.buffers():
            if buffer.is_floating_point():
                buffer.uniform_(0.5, 1.5)
    return net


def _assert_same_state(a: torch.nn.Module, b: torch.nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0)


@pytest.mark.parametrize("wrapped", [False, True], ids=["bare", "model-key"])
def test_load_bundle_network_both_checkpoint_formats(tmp_path, wrapped):
    net = _tiny_unet()
    path = tmp_path / "model.pt"
    optimizer = torch.optim.Adam(net.parameters())
    torch.save({"model": net.state_dict(), "optimizer": optimizer.state_dict()} if wrapped else net.state_dict(), path)
    loaded = load_bundle_network(SEG, path, TINY, config_files=TRAIN)
    assert type(loaded) is UNet and not loaded.training
    _assert_same_state(loaded, net)
    x = torch.rand(3, 1, 16, 16)
    torch.testing.assert_close(loaded(x), net.eval()(x))


def test_default_checkpoint_path_and_ddp_prefix(tmp_path):
    net = _tiny_unet()
    (tmp_path / "models").mkdir()
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / "models" / "model.pt")
    # the bundle's ckpt_dir is <output_dir>/models
    loaded = load_bundle_network(SEG, None, {**TINY, "output_dir": str(tmp_path)}, config_files=TRAIN)
    _assert_same_state(loaded, net)


def test_malicious_pickle_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.makedirs, (str(marker),))

    path = tmp_path / "model.pt"
    torch.save({"model": Evil()}, path)
    with pytest.raises(ValueError, match=r"model\.pt: refused or unreadable with torch\.load\(weights_only=True\)"):
        load_bundle_network(SEG, path, TINY, config_files=TRAIN)
    assert not marker.exists()
    # the file really runs code when loaded without weights_only (what the function must never do)
    torch.load(path, weights_only=False)
    assert marker.is_dir()


def test_non_state_dict_files_are_refused(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file at all")
    with pytest.raises(ValueError, match=r"garbage.pt: not a PyTorch checkpoint \(a file written by torch.save"):
        load_checkpoint_state(garbage)
    truncated = tmp_path / "truncated.pt"
    torch.save({"model": {"weight": torch.zeros(4)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:60])  # a torch.save zip cut short
    with pytest.raises(ValueError, match="truncated.pt: refused or unreadable with torch.load.weights_only=True.*: "
                                         "PytorchStreamReader failed reading zip archive"):
        load_checkpoint_state(truncated)
    strings = tmp_path / "strings.pt"
    torch.save({"model": {"weight": "not a tensor"}}, strings)  # plain data: weights_only loads it
    with pytest.raises(ValueError, match=r"strings\.pt: expected a state dict .* found \['model'\]"):
        load_checkpoint_state(strings)
    listing = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], listing)
    with pytest.raises(ValueError, match="found list"):
        load_checkpoint_state(listing)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint_state(tmp_path / "missing.pt")


def test_wrong_keys_and_shapes_give_clear_errors(tmp_path):
    other = tmp_path / "other.pt"
    torch.save(UNet(2, 1, 2, channels=(4, 8, 16), strides=(2, 2), num_res_units=1, norm="batch").state_dict(), other)
    with pytest.raises(ValueError, match=r"other\.pt does not match the network_def .*UNet.*missing key\(s\).*"
                                         r"unexpected key\(s\)"):
        load_bundle_network(SEG, other, TINY, config_files=TRAIN)
    wider = tmp_path / "wider.pt"
    torch.save(_tiny_unet(channels=(8, 16)).state_dict(), wider)
    with pytest.raises(ValueError, match=r"wider\.pt does not match .*shape mismatch"):
        load_bundle_network(SEG, wider, TINY, config_files=TRAIN)
    with pytest.raises(FileNotFoundError, match="bundle_dir not found"):
        load_bundle_network(tmp_path / "nope", wider)
    with pytest.raises(FileNotFoundError, match="bundle config not found"):
        load_bundle_network(SEG, wider, TINY, config_files=("missing.yaml",))


def test_bundle_parser_reads_the_network_def_and_overrides():
    parser = bundle_parser(SEG, {"network_def#channels": [2, 4]}, config_files=TRAIN)
    assert parser["network_def"]["_target_"] == "UNet"
    assert parser["network_def"]["channels"] == [2, 4]
    assert parser["bundle_root"] == str(SEG.resolve())


def test_bundle_test_loader_gives_the_split_in_order_with_labels(tmp_path):
    loader = bundle_test_loader(SEG, TINY_DATA, batch_size=5, config_files=EVALUATE)
    batches = list(loader)
    assert [len(b["y"]) for b in batches] == [5, 5, 2]
    expected = load_split("test", None, TINY_DATA["synthetic"], TINY_DATA["seed"])
    np.testing.assert_array_equal(torch.cat([b["y"] for b in batches]).numpy(), [e["y"] for e in expected])
    np.testing.assert_array_equal(torch.cat([b["s"] for b in batches]).numpy(), [e["s"] for e in expected])
    np.testing.assert_allclose(torch.cat([b["image"] for b in batches]).numpy(),
                               np.stack([e["image"] for e in expected]))
    validation = list(bundle_test_loader(SEG, TINY_DATA, split="validation", config_files=EVALUATE))
    assert sum(len(b["y"]) for b in validation) == 4
    # end to end: embeddings of a loaded checkpoint on the test loader equal those of the original network
    net = _tiny_unet()
    torch.save(net.state_dict(), tmp_path / "model.pt")
    loaded = load_bundle_network(SEG, tmp_path / "model.pt", TINY, config_files=TRAIN)
    a, b = extract_embeddings(loaded, loader), extract_embeddings(net, loader)
    np.testing.assert_array_equal(a["embedding"], b["embedding"])
    np.testing.assert_array_equal(a["y"], [e["y"] for e in expected])


def test_bundle_test_loader_needs_a_dataloader(tmp_path):
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "train.yaml").write_text("network_def: {_target_: torch.nn.Identity}\n")
    with pytest.raises(ValueError, match="define no 'validate#dataloader'"):
        bundle_test_loader(tmp_path, config_files=("train.yaml",))
    with pytest.raises(ValueError, match="neither 'ckpt_path' nor 'ckpt_dir'"):
        load_bundle_network(tmp_path)
