"""The Seg-SSL training objective (Saab et al. 2022, Sec. 4.2.1), checked against independent computations of the
same quantities."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from monai.networks.nets import UNet

from spatialspec.ssl import RandomFlipIntensity, SemiSupervisedObjective


def _unet() -> UNet:
    torch.manual_seed(0)
    return UNet(2, 1, 2, channels=(8, 16, 32), strides=(2, 2), num_res_units=1, norm="batch")


def _features(net: UNet, x: torch.Tensor) -> torch.Tensor:
    """The decoder's last feature map before the head, computed without the hook."""
    return net.model[1](net.model[0](x))


class _FlipFirstOnly:
    """A deterministic 'augmentation': the first call flips every image left-right, the second does nothing."""

    def __init__(self):
        self.calls = 0

    def __call__(self, images):
        self.calls += 1
        flips = torch.zeros(images.shape[0], 2, dtype=torch.bool)
        if self.calls % 2 == 1:
            flips[:, 1] = True
            return images.flip(3), flips
        return images, flips


def test_semi_supervised_objective_against_an_independent_computation():
    net = _unet().eval()
    torch.manual_seed(3)
    unlabelled = torch.randn(4, 1, 16, 16)
    loader = [{"image": unlabelled[:2]}, {"image": unlabelled[2:]}]
    objective = SemiSupervisedObjective(net, unlabelled=loader, ssl_weight=2.0, augment=_FlipFirstOnly())
    x, label = torch.randn(2, 1, 16, 16), (torch.rand(2, 1, 16, 16) > 0.8).float()
    for batch in (unlabelled[:2], unlabelled[2:], unlabelled[:2]):  # the loader restarts after its last batch
        pred = net(x)
        value = objective(pred, label)
        with torch.no_grad():
            first = _features(net, batch.flip(3)).flip(3)  # the flip undone on the feature map
            second = _features(net, batch)
        cosine = F.cosine_similarity(first.flatten(1), second.flatten(1), dim=1)
        expected = F.cross_entropy(pred, label[:, 0].long()) + 2.0 * (1 - cosine).mean()
        assert value.item() == pytest.approx(expected.item(), abs=1e-5)


def test_semi_supervised_objective_without_unlabelled_data_is_the_cross_entropy():
    net = _unet().eval()
    x, label = torch.randn(2, 1, 16, 16), (torch.rand(2, 1, 16, 16) > 0.8).float()
    for unlabelled, weight in ((None, 1.0), ([], 1.0), ([{"image": torch.randn(2, 1, 16, 16)}], 0.0)):
        objective = SemiSupervisedObjective(net, unlabelled=unlabelled, ssl_weight=weight)
        pred = net(x)
        assert objective(pred, label).item() == pytest.approx(F.cross_entropy(pred, label[:, 0].long()).item(),
                                                              abs=1e-6)


def test_identical_views_give_no_similarity_loss_and_terms_are_reported():
    from ignite.engine import Engine

    net = _unet().eval()
    identity = RandomFlipIntensity(flip_prob=0.0, scale=0.0, shift=0.0)
    objective = SemiSupervisedObjective(net, unlabelled=[{"image": torch.randn(3, 1, 16, 16)}], augment=identity)
    x, label = torch.randn(2, 1, 16, 16), torch.zeros(2, 1, 16, 16)
    values = []

    def step(engine, _):
        values.append(objective(net(x), label).item())

    engine = Engine(step)
    objective.attach(engine)
    engine.run([0, 1], max_epochs=1)
    ce = F.cross_entropy(net(x), label[:, 0].long()).item()
    assert values == pytest.approx([ce, ce], abs=1e-5)
    assert engine.state.metrics["ssl_ce"] == pytest.approx(ce, abs=1e-5)
    assert engine.state.metrics["ssl_similarity"] == pytest.approx(0.0, abs=1e-5)
