"""The mask-guided trainer objectives (issue 15) inside a MONAI ``SupervisedTrainer``: the loss of an iteration is the
loss of :mod:`spatialspec.losses.mask_guided` on the trainer's own forward pass and the batch's ``location`` and
``has_location`` keys; other forward passes are left alone; ActDiff's background replacement."""

from __future__ import annotations

import copy

import pytest
import torch
from monai.engines import SupervisedTrainer
from torch import nn
from torch.utils.data import DataLoader

import spatialspec.guided.objective as objective_module
from spatialspec.guided import (
    ActivationDifferenceObjective,
    AttentionMaskObjective,
    InputGradientObjective,
    replace_background,
)
from spatialspec.losses import ActivationDifferenceLoss, AttentionMaskLoss, GradMaskLoss, RightReasonsLoss


class Net(nn.Module):
    """Two named stages and a pooled linear head, no batch norm (the images do not interact)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer1 = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Tanh())
        self.layer2 = nn.Sequential(nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.Tanh())
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.layer2(self.layer1(x)).mean(dim=(2, 3)))


def _items() -> list[dict]:
    g = torch.Generator().manual_seed(0)
    items = []
    for i in range(4):
        location = torch.zeros(1, 8, 8)
        location[0, i:i + 3, 2:6] = 1.0
        items.append({"image": torch.randn(1, 8, 8, generator=g), "label": i % 2, "location": location,
                      "has_location": int(i != 2)})
    return items


def _train_one_step(objective_of):
    torch.manual_seed(0)
    net = Net()
    before = copy.deepcopy(net)
    objective = objective_of(net)
    trainer = SupervisedTrainer(device=torch.device("cpu"), max_epochs=1, network=net,
                                train_data_loader=DataLoader(_items(), batch_size=4),
                                optimizer=torch.optim.SGD(net.parameters(), lr=0.1), loss_function=objective,
                                decollate=False)
    objective.attach(trainer)
    trainer.run()
    batch = torch.utils.data.default_collate(_items())
    return trainer, objective, before, batch


@pytest.mark.parametrize("loss", [RightReasonsLoss(2.0), GradMaskLoss(2.0, norm="l2")])
def test_input_gradient_objective_is_the_loss_of_the_trainers_pass(loss):
    trainer, objective, before, batch = _train_one_step(lambda net: InputGradientObjective(net, loss, prefix="m"))
    inputs = batch["image"].clone().requires_grad_(True)
    expected = loss(before(inputs), batch["label"], inputs, batch["location"], batch["has_location"])
    assert trainer.state.output["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert expected.item() > loss.classification(before(batch["image"]), batch["label"]).item()
    assert set(trainer.state.metrics) >= {"m_ce", "m_guided"}
    # a forward pass outside a training iteration (validation, inference) is not touched
    kept = objective.inputs
    with torch.no_grad():
        trainer.network(batch["image"])
    trainer.network(batch["image"])
    assert objective.inputs is kept and not objective._armed


def test_attention_objective_reads_the_named_layer():
    loss = AttentionMaskLoss(3.0, omega=4.0, sigma=0.0)
    trainer, _, before, batch = _train_one_step(lambda net: AttentionMaskObjective(net, loss, layer="layer2"))
    features = before.layer2(before.layer1(batch["image"]))
    expected = loss(before.fc(features.mean(dim=(2, 3))), batch["label"], features, batch["location"],
                    batch["has_location"])
    assert trainer.state.output["loss"].item() == pytest.approx(expected.item(), rel=1e-6)


def test_activation_difference_objective_compares_the_background_replaced_pass(monkeypatch):
    calls = []

    def zero_background(images, location, mode):
        calls.append(mode)
        return images * (location > 0.5)

    monkeypatch.setattr(objective_module, "replace_background", zero_background)
    loss = ActivationDifferenceLoss(5.0)
    trainer, _, before, batch = _train_one_step(
        lambda net: ActivationDifferenceObjective(net, loss, layers=["layer1", "layer2"], background="noise"))
    x, masked = batch["image"], batch["image"] * (batch["location"] > 0.5)
    acts = [before.layer1(x), before.layer2(before.layer1(x))]
    masked_acts = [before.layer1(masked), before.layer2(before.layer1(masked))]
    expected = loss(before(x), batch["label"], acts, masked_acts, batch["has_location"])
    assert calls == ["noise"]
    assert trainer.state.output["loss"].item() == pytest.approx(expected.item(), rel=1e-6)
    assert expected.item() > loss.classification(before(x), batch["label"]).item()


def test_objective_errors_name_the_problem():
    net = Net()
    with pytest.raises(ValueError, match="layers: 'nope'"):
        AttentionMaskObjective(net, AttentionMaskLoss(), layer="nope")
    with pytest.raises(ValueError, match="background"):
        ActivationDifferenceObjective(net, ActivationDifferenceLoss(), layers=["layer1"], background="blur")
    with pytest.raises(ValueError, match="loss must be"):
        InputGradientObjective(net, AttentionMaskLoss())
    objective = InputGradientObjective(Net(), RightReasonsLoss())
    with pytest.raises(RuntimeError, match="not attached"):
        objective(torch.zeros(1, 2), torch.zeros(1))
    items = [{k: v for k, v in item.items() if k != "location"} for item in _items()]
    net = Net()
    objective = InputGradientObjective(net, RightReasonsLoss())
    trainer = SupervisedTrainer(device=torch.device("cpu"), max_epochs=1, network=net,
                                train_data_loader=DataLoader(items, batch_size=4),
                                optimizer=torch.optim.SGD(net.parameters(), lr=0.1), loss_function=objective,
                                decollate=False)
    objective.attach(trainer)
    with pytest.raises(KeyError, match="'location'"):
        trainer.run()


@pytest.mark.parametrize("mode", ["shuffle", "noise"])
def test_replace_background_keeps_the_labelled_pixels(mode):
    torch.manual_seed(1)
    images = torch.randn(3, 2, 30, 30)
    location = torch.zeros(3, 1, 30, 30)
    location[0, 0, 5:10, 5:12] = 1
    location[1] = 1  # covers the image: nothing to replace
    out = replace_background(images, location, mode)
    inside = location.expand_as(images) > 0.5
    assert torch.equal(out[inside], images[inside]) and torch.equal(out[1], images[1])
    for i in (0, 2):
        for c in range(2):
            before, after = images[i, c][location[i, 0] < 0.5], out[i, c][location[i, 0] < 0.5]
            assert not torch.equal(before, after)
            if mode == "shuffle":  # the same values, in another order
                assert torch.equal(before.sort().values, after.sort().values)
            else:  # the same mean and spread
                assert after.mean().item() == pytest.approx(before.mean().item(), abs=0.15)
                assert after.std().item() == pytest.approx(before.std().item(), rel=0.15)
    with pytest.raises(ValueError, match="mode"):
        replace_background(images, location, "blur")
    with pytest.raises(ValueError, match="location"):
        replace_background(images, location[:2])
