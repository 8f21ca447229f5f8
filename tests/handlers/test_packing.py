"""Packed resume checkpoints (spatialspec.handlers.packing, issue 17): every tensor comes back with its values, dtype,
shape and layout; the packed state loads weights-only; format-1 checkpoints still load."""

from __future__ import annotations

import io
from collections import OrderedDict

import pytest
import torch
from monai.networks.nets import UNet

from spatialspec.errors import InputError
from spatialspec.handlers import load_resume_checkpoint
from spatialspec.handlers.packing import TENSOR_MARK, pack_tensors, unpack_tensors
from spatialspec.handlers.resume import RESUME_FORMAT, get_rng_state


def _trained_state() -> dict:
    torch.manual_seed(0)
    net = UNet(2, 1, 2, channels=(8, 16), strides=(2,), num_res_units=1, norm="batch")
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(2):
        optimizer.zero_grad()
        net(torch.randn(4, 1, 16, 16)).sum().backward()
        optimizer.step()
    return {"format": RESUME_FORMAT, "epoch": 2, "objects": {"network": net.state_dict(),
                                                            "optimizer": optimizer.state_dict(),
                                                            "history": {"epochs": [1, 2], "values": [0.5, 0.4]}},
            "rng": get_rng_state(), "fingerprint": "{}", "channels_last": torch.randn(2, 3, 4, 5).to(
                memory_format=torch.channels_last), "pair": (torch.arange(3), "text"), "none": None}


def _assert_same(a, b) -> None:
    assert type(a) is type(b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.stride() == b.stride()
        assert torch.equal(a, b) or torch.allclose(a, b, rtol=0, atol=0, equal_nan=True)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            _assert_same(a[key], b[key])
        assert vars(a).keys() == vars(b).keys() if isinstance(a, OrderedDict) else True
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    else:
        assert a == b


def test_pack_round_trips_a_training_state():
    state = _trained_state()
    tree, flat = pack_tensors(state)
    assert set(flat) == {"float32", "int64", "uint8", "float64"}  # one flat tensor per dtype
    buffer = io.BytesIO()
    torch.save({**tree, "tensors": flat}, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=True)
    restored = unpack_tensors({k: v for k, v in loaded.items() if k != "tensors"}, loaded["tensors"])
    _assert_same(restored, state)
    assert restored["objects"]["network"]._metadata == state["objects"]["network"]._metadata
    # every tensor owns its storage: changing one changes no other
    restored["objects"]["network"]["model.0.conv.unit0.conv.weight"].add_(1.0)
    _assert_same(unpack_tensors(tree, flat)["objects"]["network"], state["objects"]["network"])


def test_views_without_copy():
    tree, flat = pack_tensors({"a": torch.ones(3), "b": torch.zeros(2, 2)})
    views = unpack_tensors(tree, flat, copy=False)
    assert views["b"].untyped_storage().data_ptr() == flat["float32"].untyped_storage().data_ptr()


def test_checkpoint_formats_one_and_two_load_alike(tmp_path):
    state = _trained_state()
    del state["channels_last"], state["pair"], state["none"]
    old = {**state, "format": 1}
    torch.save(old, tmp_path / "v1.pt")
    tree, flat = pack_tensors({**state, "format": 2})
    torch.save({**tree, "tensors": flat}, tmp_path / "v2.pt")
    one, two = load_resume_checkpoint(tmp_path / "v1.pt"), load_resume_checkpoint(tmp_path / "v2.pt")
    assert one.pop("format") == 1 and two.pop("format") == 2
    _assert_same(one, two)
    assert load_resume_checkpoint(tmp_path / "v2.pt", mmap=True)["epoch"] == 2


def test_broken_packed_checkpoint_is_refused(tmp_path):
    tree, _ = pack_tensors({"format": 2, "epoch": 1, "w": torch.ones(2)})
    torch.save({**tree, "tensors": {}}, tmp_path / "broken.pt")
    with pytest.raises(InputError, match="packed tensors do not unpack"):
        load_resume_checkpoint(tmp_path / "broken.pt")
    torch.save(tree, tmp_path / "no_tensors.pt")
    with pytest.raises(InputError, match="without its tensors"):
        load_resume_checkpoint(tmp_path / "no_tensors.pt")
    assert TENSOR_MARK in tree["w"]
