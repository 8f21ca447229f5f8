"""MixedSupervisionLoss (issue 15, Sec. 3) against a hand computation, gradients included."""

from __future__ import annotations

import math

import pytest
import torch

from spatialspec.losses import ChannelCrossEntropyLoss, MixedSupervisionLoss


def _hand(pred: torch.Tensor, label: torch.Tensor, has: list[int], y: list[int], score: str, weight: float
          ) -> torch.Tensor:
    """The formula image by image, with scalar logs: pixel CE where has=1, BCE of the score where has=0."""
    total = pred.sum() * 0.0
    for i in range(pred.shape[0]):
        if has[i]:
            logp = torch.log_softmax(pred[i], dim=0)  # C x H x W
            target = label[i, 0].long()
            total = total - logp.gather(0, target[None])[0].mean()
        else:
            p = torch.softmax(pred[i], dim=0)[-1].flatten()
            top3 = p.sort(descending=True).values[:3].mean()
            s = p.mean() if score == "mean" else p.max() if score == "max" else top3
            total = total - weight * (y[i] * torch.log(s) + (1 - y[i]) * torch.log(1 - s))
    return total / pred.shape[0]


@pytest.mark.parametrize("score", ["mean", "max", "topk:3"])
@pytest.mark.parametrize("has", [[1, 0, 0, 1, 0], [1, 1, 1, 1, 1], [0, 0, 0, 0, 0]])
def test_loss_and_gradient_match_hand_computation(score, has):
    gen = torch.Generator().manual_seed(0)
    pred = torch.randn(5, 2, 6, 6, generator=gen, dtype=torch.float64)
    label = (torch.rand(5, 1, 6, 6, generator=gen) > 0.6).double()
    y = [1, 1, 0, 0, 1]
    weight = 0.7
    a = pred.clone().requires_grad_(True)
    b = pred.clone().requires_grad_(True)
    got = MixedSupervisionLoss(score=score, mil_weight=weight)(a, label, torch.tensor(has), torch.tensor(y))
    want = _hand(b, label, has, y, score, weight)
    assert got.item() == pytest.approx(want.item(), rel=1e-6, abs=1e-9)  # the score is float32
    got.backward()
    want.backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-7)
    # the images without a location label get no gradient from their (hidden) masks: their gradient is the MIL one
    if 0 in has and 1 in has:
        assert a.grad[[i for i, h in enumerate(has) if not h]].abs().sum() > 0


def test_terms_split_and_weight():
    pred = torch.zeros(4, 2, 3, 3)  # every probability 0.5: pixel CE and BCE are log 2 per image
    label = torch.ones(4, 1, 3, 3)
    loss = MixedSupervisionLoss(mil_weight=2.0)
    pixel, mil = loss.terms(pred, label, torch.tensor([1, 0, 0, 0]), torch.tensor([1, 0, 1, 1]))
    assert pixel.item() == pytest.approx(math.log(2) / 4)
    assert mil.item() == pytest.approx(3 * math.log(2) / 4)
    assert loss(pred, label, torch.tensor([1, 0, 0, 0]), torch.tensor([1, 0, 1, 1])).item() == pytest.approx(
        7 * math.log(2) / 4)
    # all labelled: the bundle's pixel loss itself
    full = loss(pred, label, torch.ones(4), torch.ones(4))
    assert full.item() == pytest.approx(ChannelCrossEntropyLoss()(pred, label).item())


@pytest.mark.parametrize("kwargs, match", [({"score": "median"}, "score"), ({"mil_weight": -1}, "mil_weight"),
                                           ({"eps": 0.7}, "eps")])
def test_bad_parameters_name_themselves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MixedSupervisionLoss(**kwargs)


def test_flags_must_match_batch():
    with pytest.raises(ValueError, match="one value per image"):
        MixedSupervisionLoss()(torch.zeros(3, 2, 2, 2), torch.zeros(3, 1, 2, 2), torch.ones(2), torch.ones(3))
