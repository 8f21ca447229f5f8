"""FeatureMapHook: the pixel-embedding layer Seg-SSL and Seg-SPL read (Saab et al. 2022, Sec. 4.2), checked against
the network's modules run by hand."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import UNet
from torch import nn

from spatialspec.networks import FeatureMapHook, default_feature_layer


def _unet() -> UNet:
    torch.manual_seed(0)
    return UNet(2, 1, 2, channels=(16, 32, 64), strides=(2, 2), num_res_units=1, norm="batch").eval()


def test_hook_reads_the_input_of_the_top_up_block():
    net = _unet()
    assert default_feature_layer(net) == "model.2"
    hook = FeatureMapHook(net)
    x = torch.randn(3, 1, 40, 40)
    with torch.no_grad():
        out = net(x)
        # independently: the encoder's top block, then the skip connection (encoder features ++ decoder features)
        expected = net.model[1](net.model[0](x))
        assert torch.equal(net.model[2](expected), out)
    features = hook.pop()
    assert features.shape == (3, 32, 20, 20)
    assert torch.equal(features, expected)
    with pytest.raises(RuntimeError, match="model.2"):
        hook.pop()
    hook.remove()
    net(x)
    assert hook.features is None


def test_hook_output_capture_and_named_layer():
    net = _unet()
    hook = FeatureMapHook(net, layer="model.0", capture="output")
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        net(x)
        assert torch.equal(hook.pop(), net.model[0](x))


def test_segmentation_head_is_the_default_when_present():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.decoder = nn.Conv2d(1, 4, 3, padding=1)
            self.segmentation_head = nn.Conv2d(4, 2, 1)

        def forward(self, x):
            return self.segmentation_head(self.decoder(x))

    net = Net()
    hook = FeatureMapHook(net)
    x = torch.randn(2, 1, 8, 8)
    with torch.no_grad():
        net(x)
        assert torch.equal(hook.pop(), net.decoder(x))


def test_hook_errors_name_the_layer():
    with pytest.raises(ValueError, match="nope"):
        FeatureMapHook(_unet(), layer="nope")
    with pytest.raises(ValueError, match="capture"):
        FeatureMapHook(_unet(), capture="middle")
    with pytest.raises(ValueError, match="Linear"):
        default_feature_layer(nn.Linear(2, 2))


def test_default_layer_inside_a_data_parallel_wrapper():
    from monai.networks.nets import UNet

    net = UNet(spatial_dims=2, in_channels=1, out_channels=2, channels=(4, 8), strides=(2,), num_res_units=0)
    wrapped = torch.nn.DataParallel(net)
    assert default_feature_layer(wrapped) == "module." + default_feature_layer(net)
    assert dict(wrapped.named_modules())[default_feature_layer(wrapped)] is dict(net.named_modules())[
        default_feature_layer(net)]
