"""The paper-scale networks of every level and method (the family's paper_scale.yaml and the method's paper overlays,
merged by ``spatialspec.registry.config_files(name, paper_scale=True)``; App. A.1 and A.2): each builds with the
paper's optimiser settings, takes one training step on two 256 x 256 images, and reads ImageNet weights from a local
file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser
from monai.networks.nets import FlexibleUNet, ResNet, SEResNeXt50

import spatialspec  # noqa: F401  (registers the se_resnext50_32x4d backbone)
from spatialspec import registry

BUNDLES = Path(__file__).resolve().parents[2] / "bundles"
# level or method -> (network class, optimiser, learning rate): App. A.1 (Adam) and A.2 (SGD) of Saab et al. 2022
PAPER = {"seg": (FlexibleUNet, torch.optim.Adam, 5e-4),
         "bbox": (FlexibleUNet, torch.optim.Adam, 5e-4),
         "classifier": (ResNet, torch.optim.Adam, 1e-5),
         "jtt": (ResNet, torch.optim.SGD, 1e-4),
         "george": (ResNet, torch.optim.SGD, 1e-4)}


def _parser(name: str, **overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(f) for f in registry.config_files(name, paper_scale=True, bundles_dir=BUNDLES)])
    parser["device"] = "$torch.device('cpu')"
    for key, value in overrides.items():
        parser[key] = value
    return parser


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(PAPER))
def test_builds_and_trains_one_step_on_two_256_images(name):
    network_class, optimizer_class, lr = PAPER[name]
    parser = _parser(name)
    network = parser.get_parsed_content("network")
    optimizer = parser.get_parsed_content("optimizer")
    loss_fn = parser.get_parsed_content("loss")
    assert type(network) is network_class
    assert type(optimizer) is optimizer_class and optimizer.param_groups[0]["lr"] == lr
    torch.manual_seed(0)
    image = torch.randn(2, 1, 256, 256)
    pixel_wise = network_class is FlexibleUNet
    target = (torch.rand(2, 1, 256, 256) > 0.8).float() if pixel_wise else torch.tensor([0, 1])
    network.train()
    before = {n: p.detach().clone() for n, p in network.named_parameters()}
    output = network(image)
    assert tuple(output.shape) == ((2, 2, 256, 256) if pixel_wise else (2, 2))
    loss = loss_fn(output, target)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    # every parameter moved, but a convolution bias right before a batch norm (MONAI ResNet's default
    # bias_downsample=True), which the normalisation cancels
    unchanged = [n for n, p in network.named_parameters() if torch.equal(before[n], p)]
    assert all(n.endswith("downsample.0.bias") for n in unchanged), unchanged


def test_segmentation_paper_scale_reads_local_encoder_weights(tmp_path):
    torch.manual_seed(0)
    source = SEResNeXt50(spatial_dims=2, in_channels=3, num_classes=1000)
    path = tmp_path / "se_resnext50.pth"
    torch.save(source.state_dict(), path)
    network = _parser("seg", **{"network_def#pretrained": str(path), "network_def#in_channels": 3}) \
        .get_parsed_content("network")
    torch.testing.assert_close(network.encoder.layer3[1].conv2.conv.weight, source.layer3[1].conv2.conv.weight,
                               rtol=0, atol=0)
    with pytest.raises(RuntimeError) as info:  # MONAI wraps the constructor's error
        _parser("seg", **{"network_def#pretrained": True}).get_parsed_content("network")
    assert isinstance(info.value.__cause__, ValueError) and "never does" in str(info.value.__cause__)


def test_binary_paper_scale_is_torchvision_resnet50_and_reads_local_weights(tmp_path):
    """torchvision's ResNet-50 architecture (25,557,032 parameters with the 1000-class head, as published), so its
    ImageNet file loads by name; the 2-class head keeps its initialisation."""
    parser = _parser("classifier")
    config = {k: v for k, v in parser["network_def"].items() if k != "_target_"}
    imagenet = ResNet(**{**config, "n_input_channels": 3, "num_classes": 1000})
    assert sum(p.numel() for p in imagenet.parameters()) == 25_557_032
    path = tmp_path / "resnet50.pth"
    torch.save(imagenet.state_dict(), path)
    network = _parser("classifier", pretrained=str(path)).get_parsed_content("network")
    torch.testing.assert_close(network.layer4[2].conv3.weight, imagenet.layer4[2].conv3.weight, rtol=0, atol=0)
    torch.testing.assert_close(network.conv1.weight, imagenet.conv1.weight.sum(dim=1, keepdim=True), rtol=0, atol=0)
