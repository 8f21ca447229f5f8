"""spatialspec.networks: the SE-ResNeXt50 FlexibleUNet encoder and local-file pretrained weights (App. A.1)."""

from __future__ import annotations

import re

import pytest
import torch
from monai.networks.nets import FlexibleUNet, ResNet, SEResNeXt50
from monai.networks.nets.flexible_unet import FLEXUNET_BACKBONE

import spatialspec  # noqa: F401  (registers the backbone, as a bundle's `$import spatialspec` does)
from spatialspec.networks import SEResNeXtEncoder, load_pretrained

torch.set_num_threads(1)


def _to_cadene(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """MONAI SENet names -> Cadene's pretrainedmodels names (the inverse of the library's mapping, written out
    independently); SE weights become 1 x 1 convolutions; num_batches_tracked dropped, as in the published file."""
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            continue
        new = re.sub(r"^(layer[1-4]\.\d+\.)(conv\d\.)conv\.(\w+)$", r"\1\2\3", key)
        new = re.sub(r"^(layer[1-4]\.\d+\.)conv(\d\.)adn\.N\.(\w+)$", r"\1bn\2\3", new)
        new = re.sub(r"^(layer[1-4]\.\d+\.)project\.conv\.(\w+)$", r"\1downsample.0.\2", new)
        new = re.sub(r"^(layer[1-4]\.\d+\.)project\.adn\.N\.(\w+)$", r"\1downsample.1.\2", new)
        se = re.match(r"^(layer[1-4]\.\d+\.)se_layer\.fc\.([02])\.(\w+)$", new)
        if se:
            new = f"{se.group(1)}se_module.fc{1 if se.group(2) == '0' else 2}.{se.group(3)}"
            if value.ndim == 2:
                value = value[:, :, None, None]
        out[new] = value.clone()
    return out


@pytest.fixture(scope="module")
def source():
    """A randomly initialised MONAI SE-ResNeXt50 with non-trivial batch-norm statistics, in eval mode."""
    torch.manual_seed(0)
    net = SEResNeXt50(spatial_dims=2, in_channels=3, num_classes=1000)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return net.eval()


@pytest.fixture(scope="module")
def cadene_file(source, tmp_path_factory):
    path = tmp_path_factory.mktemp("weights") / "se_resnext50_32x4d-a260b3a4.pth"
    state = _to_cadene(source.state_dict())
    assert "layer1.0.se_module.fc1.weight" in state and state["layer1.0.se_module.fc1.weight"].ndim == 4
    assert "last_linear.weight" in state
    torch.save(state, path)
    return path


def test_registered_backbone_and_feature_maps():
    info = FLEXUNET_BACKBONE.register_dict["se_resnext50_32x4d"]
    assert info["type"] is SEResNeXtEncoder and info["feature_number"] == 5
    assert info["feature_channel"] == (64, 256, 512, 1024, 2048)
    encoder = SEResNeXtEncoder(in_channels=1)
    assert not hasattr(encoder, "last_linear")
    features = encoder(torch.randn(2, 1, 64, 96))
    assert [tuple(f.shape) for f in features] == [(2, 64, 32, 48), (2, 256, 16, 24), (2, 512, 8, 12),
                                                  (2, 1024, 4, 6), (2, 2048, 2, 3)]


def test_encoder_has_the_se_resnext50_layers(source):
    """Same modules and shapes as MONAI's SEResNeXt50 minus its classifier (and so smp's encoder's 25.5 M)."""
    encoder = SEResNeXtEncoder(in_channels=3)
    ours = {k: tuple(v.shape) for k, v in encoder.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in source.state_dict().items() if not k.startswith("last_linear.")}
    assert ours == theirs
    head = sum(p.numel() for n, p in source.named_parameters() if n.startswith("last_linear."))
    assert sum(p.numel() for p in encoder.parameters()) == sum(p.numel() for p in source.parameters()) - head


@pytest.mark.parametrize("in_channels", [1, 3])
def test_flexible_unet_builds_and_trains(in_channels):
    net = FlexibleUNet(in_channels=in_channels, out_channels=3, backbone="se_resnext50_32x4d", pretrained=False,
                       spatial_dims=2)
    x = torch.randn(2, in_channels, 64, 64)
    out = net(x)
    assert tuple(out.shape) == (2, 3, 64, 64)
    loss = torch.nn.functional.cross_entropy(out, torch.randint(0, 3, (2, 64, 64)))
    loss.backward()
    assert net.encoder.layer0.conv1.weight.grad is not None
    assert net.encoder.layer0.conv1.weight.shape[1] == in_channels


def test_pretrained_cadene_file_gives_the_source_network(source, cadene_file):
    """Loaded from Cadene's naming, the encoder computes exactly the source network's features."""
    encoder = SEResNeXtEncoder(in_channels=3, pretrained=cadene_file).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours = encoder(x)[-1]
        theirs = source.features(x)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_pretrained_grey_input_sums_rgb_kernels(source, cadene_file):
    """One input channel: a grey image gives the features of the RGB image with equal channels."""
    encoder = SEResNeXtEncoder(in_channels=1, pretrained=str(cadene_file)).eval()
    grey = torch.randn(1, 1, 64, 64)
    rgb = grey.repeat(1, 3, 1, 1)
    with torch.no_grad():
        ours = encoder(grey)
        stem, deepest = source.layer0[:-1](rgb), source.features(rgb)
    # summation order differs (one 7 x 7 kernel against three): equal up to float rounding, which the 50 layers
    # below the stem amplify a little
    torch.testing.assert_close(ours[0], stem, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours[-1], deepest, rtol=1e-3, atol=1e-3 * float(deepest.abs().max()))


def test_pretrained_monai_named_file_and_through_flexible_unet(source, tmp_path):
    path = tmp_path / "monai_names.pt"
    torch.save({"state_dict": source.state_dict()}, path)
    net = FlexibleUNet(in_channels=3, out_channels=2, backbone="se_resnext50_32x4d", pretrained=str(path),
                       spatial_dims=2)
    for name, value in net.encoder.state_dict().items():
        torch.testing.assert_close(value, source.state_dict()[name], rtol=0, atol=0)


def test_pretrained_errors(tmp_path, source):
    with pytest.raises(ValueError, match="never does.*local weights file"):
        SEResNeXtEncoder(pretrained=True)
    missing = tmp_path / "nowhere" / "se_resnext50.pth"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        FlexibleUNet(in_channels=1, out_channels=2, backbone="se_resnext50_32x4d", pretrained=str(missing))
    wrong = tmp_path / "resnet.pth"
    torch.save(ResNet(block="basic", layers=[1, 1, 1, 1], block_inplanes=[8, 16, 32, 64], spatial_dims=2,
                      n_input_channels=3).state_dict(), wrong)
    with pytest.raises(ValueError, match=f"{re.escape(str(wrong))} does not match SEResNeXtEncoder: .* missing"):
        SEResNeXtEncoder(pretrained=wrong)
    truncated = tmp_path / "truncated.pth"
    state = _to_cadene(source.state_dict())
    state.pop("layer4.2.conv3.weight")
    torch.save(state, truncated)
    with pytest.raises(ValueError, match=r"1 missing name\(s\) \['layer4.2.conv3.conv.weight'\]"):
        SEResNeXtEncoder(pretrained=truncated)
    code = tmp_path / "pickled.pth"
    torch.save({"weights": object.__new__(torch.nn.Identity)}, code)
    with pytest.raises(ValueError, match="weights_only=True"):
        SEResNeXtEncoder(pretrained=code)
    with pytest.raises(ValueError, match="spatial_dims must be 2"):
        SEResNeXtEncoder(spatial_dims=3, pretrained=truncated)
    with pytest.raises(ValueError, match="in_channels=2"):
        SEResNeXtEncoder(in_channels=2, pretrained=_save(tmp_path, source))


def _save(tmp_path, source):
    path = tmp_path / "ok.pth"
    torch.save(_to_cadene(source.state_dict()), path)
    return path


def test_load_pretrained_resnet50_torchvision_names(tmp_path):
    """A torchvision-named ResNet-50 file (MONAI's 2-D ResNet uses the same names) loads into a 2-class, 1-channel
    MONAI ResNet-50: the head keeps its initialisation, the stem sums the RGB kernels, the rest is copied."""
    kwargs = dict(block="bottleneck", layers=[3, 4, 6, 3], block_inplanes=[64, 128, 256, 512], spatial_dims=2,
                  conv1_t_stride=2, bias_downsample=False)
    torch.manual_seed(1)
    imagenet = ResNet(n_input_channels=3, num_classes=1000, **kwargs)
    path = tmp_path / "resnet50-0676ba61.pth"
    torch.save(imagenet.state_dict(), path)
    net = ResNet(n_input_channels=1, num_classes=2, **kwargs)
    head_before = net.fc.weight.detach().clone()
    assert load_pretrained(net, path) is net
    torch.testing.assert_close(net.fc.weight, head_before, rtol=0, atol=0)
    torch.testing.assert_close(net.conv1.weight, imagenet.conv1.weight.sum(dim=1, keepdim=True), rtol=0, atol=0)
    torch.testing.assert_close(net.layer3[2].conv2.weight, imagenet.layer3[2].conv2.weight, rtol=0, atol=0)
    assert load_pretrained(net, False) is net and load_pretrained(net, None) is net
