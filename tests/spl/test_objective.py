"""The Seg-SPL training objective (Saab et al. 2022, Sec. 4.2.2), checked against an independent computation of the
same quantity."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.networks.nets import UNet

from spatialspec.losses import PixelSimilarityLoss
from spatialspec.spl import PixelSimilarityObjective, labels_at


def _unet() -> UNet:
    torch.manual_seed(0)
    return UNet(2, 1, 2, channels=(8, 16, 32), strides=(2, 2), num_res_units=1, norm="batch")


def _features(net: UNet, x: torch.Tensor) -> torch.Tensor:
    """The decoder's last feature map before the head, computed without the hook."""
    return net.model[1](net.model[0](x))


def test_labels_at_is_the_block_mean():
    labels = (torch.rand(2, 1, 8, 8) > 0.5).float()
    expected = labels.reshape(2, 1, 4, 2, 4, 2).mean(dim=(3, 5))
    assert torch.allclose(labels_at(labels, (4, 4)), expected)
    assert labels_at(labels, (8, 8)) is not None and torch.equal(labels_at(labels, (8, 8)), labels)


def test_pixel_similarity_objective_is_ce_plus_weighted_similarity():
    net = _unet().eval()  # eval: the forward pass is deterministic, so the reference can repeat it
    objective = PixelSimilarityObjective(net, spl_weight=0.5)
    x = torch.randn(3, 1, 16, 16)
    label = torch.zeros(3, 1, 16, 16)
    label[:, :, 4:10, 6:12] = 1.0
    pred = net(x)
    value = objective(pred, label)
    with torch.no_grad():
        features = _features(net, x)
    down = label.reshape(3, 1, 8, 2, 8, 2).mean(dim=(3, 5))
    expected = F.cross_entropy(pred, label[:, 0].long()) + 0.5 * PixelSimilarityLoss()(features, down)
    assert value.item() == pytest.approx(expected.item(), abs=1e-5)
    value.backward()  # the similarity term reaches the encoder and decoder weights
    assert net.model[0].conv.unit0.conv.weight.grad.abs().sum() > 0
    with pytest.raises(RuntimeError, match="no forward pass"):
        objective(pred, label)  # the feature map of a forward pass is used once
    with pytest.raises(ValueError, match="spl_weight"):
        PixelSimilarityObjective(net, spl_weight=-1)
