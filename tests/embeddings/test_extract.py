"""Embedding extraction by forward hook (Table 2 embeddings, GEORGE's penultimate features)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.networks.nets import FlexibleUNet, ResNet, UNet
from torch import nn

from spatialspec.embeddings import EmbeddingExtractor, default_embedding_layer, extract_embeddings


def _resnet() -> ResNet:
    return ResNet("basic", [1, 1, 1, 1], [8, 16, 32, 64], spatial_dims=2, n_input_channels=1, num_classes=2)


def test_default_layers_of_monai_networks():
    assert default_embedding_layer(_resnet()) == "avgpool"
    unet = UNet(2, 1, 2, channels=(16, 32, 64), strides=(2, 2), num_res_units=1)
    layer = default_embedding_layer(unet)
    # the bottleneck: the module whose output has the most channels and the smallest spatial size
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            seen[name] = output.shape
        return hook

    hooks = [m.register_forward_hook(record(name)) for name, m in unet.named_modules() if name]
    unet(torch.rand(1, 1, 16, 16))
    for h in hooks:
        h.remove()
    assert seen[layer] == (1, 64, 4, 4)
    deeper = UNet(2, 1, 2, channels=(4, 8, 16, 32), strides=(2, 2, 2))
    assert default_embedding_layer(deeper).count("submodule") == 3
    with pytest.raises(ValueError, match="Linear"):
        default_embedding_layer(nn.Linear(3, 2))


def test_resnet_embedding_is_the_input_of_the_final_layer():
    net = _resnet().eval()
    x = torch.rand(5, 1, 32, 32)
    with EmbeddingExtractor(net) as hook, torch.no_grad():
        logits = net(x)
    emb = hook.pop()
    assert emb.shape == (5, 64)
    # the penultimate features: the fc layer maps them to the logits
    torch.testing.assert_close(net.fc(emb), logits)


def test_pooling_modes_and_layer_errors():
    net = UNet(2, 1, 2, channels=(4, 8), strides=(2,), num_res_units=0).eval()
    layer = default_embedding_layer(net)
    x = torch.rand(2, 1, 8, 8)
    captured = {}
    handle = dict(net.named_modules())[layer].register_forward_hook(lambda m, i, o: captured.update(o=o))
    with torch.no_grad(), EmbeddingExtractor(net, pool="max") as hmax, EmbeddingExtractor(net, pool="flatten") as hf:
        net(x)
    handle.remove()
    out = captured["o"]
    torch.testing.assert_close(hmax.pop(), out.amax(dim=(2, 3)))
    torch.testing.assert_close(hf.pop(), out.reshape(2, -1))
    with pytest.raises(ValueError, match="not a module"):
        EmbeddingExtractor(net, layer="nope")
    with pytest.raises(ValueError, match="pool"):
        EmbeddingExtractor(net, pool="median")
    with pytest.raises(RuntimeError, match="no forward pass"):
        EmbeddingExtractor(net).pop()


def test_hook_is_removed_after_the_block():
    net = _resnet()
    with EmbeddingExtractor(net) as hook:
        pass
    net(torch.rand(2, 1, 16, 16))
    with pytest.raises(RuntimeError):
        hook.pop()


def test_flexible_unet_uses_the_deepest_encoder_map():
    net = FlexibleUNet(1, 2, backbone="resnet18", pretrained=False, spatial_dims=2)
    assert default_embedding_layer(net) == "encoder"
    with EmbeddingExtractor(net) as hook, torch.no_grad():
        net.eval()(torch.rand(2, 1, 64, 64))
    assert hook.pop().shape == (2, 512)


def test_extract_embeddings_over_batches_keeps_order_and_keys():
    net = _resnet()
    net.train()
    images = torch.rand(7, 1, 16, 16)
    batches = [{"image": images[i:i + 3], "y": torch.arange(i, min(i + 3, 7)), "s": torch.zeros(min(3, 7 - i))}
               for i in range(0, 7, 3)]
    out = extract_embeddings(net, batches, keys=("y", "s", "absent"))
    assert net.training, "the network's mode is restored"
    assert out["embedding"].shape == (7, 64) and out["logits"].shape == (7, 2)
    np.testing.assert_array_equal(out["y"], np.arange(7))
    assert "absent" not in out
    net.eval()
    with torch.no_grad():  # one pass over all images at once, in eval mode
        expected = net(images)
    np.testing.assert_allclose(out["logits"], expected.numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="no batch"):
        extract_embeddings(net, [])
    with pytest.raises(KeyError, match="image"):
        extract_embeddings(net, [{"img": images}])
