"""GroupDROObjective, the loss_function of a MONAI SupervisedTrainer in GEORGE's second stage (Saab et al. 2022,
App. A.2): group DRO (Sagawa et al. 2020) over the inferred groups, against a numpy reference of the online update."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from ignite.engine import Engine, Events
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedTrainer

from spatialspec.losses import ChannelCrossEntropyLoss
from spatialspec.robust.george import GroupDROObjective, InferredGroups


def _softmax(values):
    exps = [math.exp(v) for v in values]
    return [e / sum(exps) for e in exps]


class _ReferenceDRO:
    """Sagawa et al.'s online update, written out in numpy: logits_g += eta * (L_g + C / sqrt(n_g)),
    q = softmax(logits), loss = sum_g q_g L_g; with training counts every group with samples moves (absent:
    L_g = 0), with batch counts only the groups present."""

    def __init__(self, n_groups, step_size, size_adjustment=0.0, counts=None):
        self.logits = np.zeros(n_groups)
        self.eta, self.c, self.counts = step_size, size_adjustment, counts

    @property
    def q(self):
        e = np.exp(self.logits - self.logits.max())
        return e / e.sum()

    def __call__(self, losses, groups):
        losses, groups = np.asarray(losses, dtype=np.float64), np.asarray(groups)
        group_loss = np.zeros(len(self.logits))
        for g in range(len(self.logits)):
            present = bool((groups == g).any())
            if present:
                group_loss[g] = losses[groups == g].mean()
            n = self.counts[g] if self.counts is not None else (groups == g).sum()
            if present or n > 0:
                self.logits[g] += self.eta * (group_loss[g] + self.c / math.sqrt(max(n, 1)))
        return float((self.q * group_loss).sum())


def _cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Per-sample cross-entropy, -log softmax(logits)[label], in float64 numpy."""
    z = logits.detach().double().numpy()
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -np.take_along_axis(log_p, labels.long().numpy().reshape(-1, 1), axis=1)[:, 0]


def _trainer_data(n: int = 12, n_groups: int = 3, with_group: bool = True) -> list[dict]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 3, generator=gen)
    y = torch.randint(0, 2, (n,), generator=gen)
    items = []
    for i in range(n):
        item = {"image": x[i], "label": y[i]}
        if with_group:
            item["group"] = torch.tensor(i % n_groups)
        items.append(item)
    return items


def _trainer(objective, data, epochs: int = 1) -> SupervisedTrainer:
    torch.manual_seed(0)
    network = torch.nn.Linear(3, 2)
    return SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=epochs, train_data_loader=DataLoader(Dataset(data), batch_size=4),
        network=network, optimizer=torch.optim.SGD(network.parameters(), lr=0.5), loss_function=objective,
        train_handlers=[objective], decollate=False)


def test_objective_in_supervised_trainer_matches_reference():
    n_groups, eta = 3, 0.7
    objective = GroupDROObjective(ChannelCrossEntropyLoss(reduction="none"), n_groups=n_groups, step_size=eta,
                                  size_adjustment=1.5)
    trainer = _trainer(objective, _trainer_data(n_groups=n_groups), epochs=2)
    reference, records = {}, []

    @trainer.on(Events.STARTED)
    def _started(engine):  # registered after the objective's own STARTED handler
        assert objective.group_loss is not None
        assert objective.group_loss.q.tolist() == pytest.approx([1 / n_groups] * n_groups)
        reference["dro"] = _ReferenceDRO(n_groups, eta, 1.5)

    @trainer.on(Events.ITERATION_COMPLETED)
    def _check(engine):  # the network output of this iteration was computed before the optimiser step
        out = engine.state.output
        expected = reference["dro"](_cross_entropy(out["pred"], out["label"]), engine.state.batch["group"].numpy())
        records.append((out["loss"].item(), expected))

    @trainer.on(Events.EPOCH_COMPLETED)
    def _metrics(engine):
        q = [engine.state.metrics[f"dro_q_{g}"] for g in range(n_groups)]
        assert sum(q) == pytest.approx(1.0)
        assert q == pytest.approx(reference["dro"].q.tolist(), abs=1e-6)
        assert f"dro_q_{n_groups}" not in engine.state.metrics

    trainer.run()
    assert len(records) == 6  # 2 epochs x 3 iterations
    for loss, expected in records:
        assert loss == pytest.approx(expected, rel=1e-5)
    assert not np.allclose(reference["dro"].q, 1 / n_groups)  # the weights did move

    # a new run starts again from uniform weights
    reference.clear()
    records.clear()
    trainer.run()
    assert len(records) == 6 and all(loss == pytest.approx(exp, rel=1e-5) for loss, exp in records)


def test_objective_needs_attach_and_group_key():
    objective = GroupDROObjective(ChannelCrossEntropyLoss(reduction="none"), n_groups=2)
    pred, target = torch.zeros(2, 2), torch.tensor([0, 1])
    with pytest.raises(RuntimeError, match="not attached"):
        objective(pred, target)
    engine = Engine(lambda e, b: None)
    objective.attach(engine)
    engine.state.batch = {"image": torch.zeros(2, 3), "label": target}
    with pytest.raises(KeyError, match="'group'"):
        objective(pred, target)
    engine.state.batch = [torch.zeros(2, 3), target]  # not a dict batch
    with pytest.raises(KeyError, match="'group'"):
        objective(pred, target)
    other = GroupDROObjective(ChannelCrossEntropyLoss(reduction="none"), n_groups=2, group_key="cluster")
    other.attach(engine)
    engine.state.batch = {"group": torch.tensor([0, 1])}
    with pytest.raises(KeyError, match="'cluster'"):
        other(pred, target)


def test_objective_missing_group_key_in_trainer():
    objective = GroupDROObjective(ChannelCrossEntropyLoss(reduction="none"), n_groups=3)
    trainer = _trainer(objective, _trainer_data(with_group=False))
    with pytest.raises(KeyError, match="'group'"):
        trainer.run()


def test_objective_invalid_construction():
    with pytest.raises(ValueError, match="reduction"):
        GroupDROObjective(torch.nn.CrossEntropyLoss(), n_groups=2)  # reduction='mean'
    with pytest.raises(ValueError, match="reduction"):
        GroupDROObjective(ChannelCrossEntropyLoss(reduction="sum"), n_groups=2)
    with pytest.raises(ValueError, match="n_groups"):
        GroupDROObjective(ChannelCrossEntropyLoss(reduction="none"))


def test_objective_from_inferred_groups_file(tmp_path):
    path = tmp_path / "groups.json"
    # training sizes: group 0: 9, group 1: 4, group 2: 0
    InferredGroups(n_groups=3, groups={"training": [0] * 9 + [1] * 4}).save(path)
    objective = GroupDROObjective(ChannelCrossEntropyLoss(reduction="none"), groups=str(path), step_size=0.1,
                                  size_adjustment=3.0)
    engine = Engine(lambda e, b: None)
    objective.attach(engine)
    engine.fire_event(Events.STARTED)  # what engine.run does first: the file is read now
    assert objective.n_groups == 3
    assert objective.group_loss.group_counts.tolist() == [9.0, 4.0, 0.0]

    # logits [0, 0] (CE = log 2), [log 3, 0] (CE = log 4) and [0, log 3] for class 1 (CE = log 4)
    pred = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0], [0.0, math.log(3.0)], [0.0, 0.0]])
    target = torch.tensor([0, 1, 0, 1])
    engine.state.batch = {"group": torch.tensor([0, 0, 2, 2])}
    loss = objective(pred, target)
    # L0 = (log 2 + log 4) / 2 = 1.5 log 2; L2 = (log 4 + log 2) / 2 = 1.5 log 2; group 1 absent (L1 = 0)
    l0 = l2 = 1.5 * math.log(2.0)
    # sqrt(9) = 3; absent group 1 grows by its adjustment 3 / sqrt(4); the empty group 2 appears: counted as 1
    logits = [0.1 * (l0 + 3.0 / 3.0), 0.1 * (3.0 / 2.0), 0.1 * (l2 + 3.0 / 1.0)]
    assert objective.group_loss.logits.tolist() == pytest.approx(logits, abs=1e-6)
    q = _softmax(logits)
    assert loss.item() == pytest.approx(q[0] * l0 + q[2] * l2, abs=1e-6)
    engine.fire_event(Events.EPOCH_COMPLETED)
    assert [engine.state.metrics[f"dro_q_{g}"] for g in range(3)] == pytest.approx(q, abs=1e-6)


def test_objective_from_inferred_groups_object():
    groups = InferredGroups(n_groups=2, groups={"training": [0, 1, 1, 1]})
    objective = GroupDROObjective(ChannelCrossEntropyLoss(reduction="none"), groups=groups, n_groups=7)
    assert objective.build().n_groups == 2  # the groups win over n_groups
    assert objective.group_loss.group_counts.tolist() == [1.0, 3.0]


def test_objective_file_written_after_construction(tmp_path):
    path = tmp_path / "late.json"
    objective = GroupDROObjective(ChannelCrossEntropyLoss(reduction="none"), groups=path)
    engine = Engine(lambda e, b: None)
    objective.attach(engine)
    with pytest.raises(FileNotFoundError, match="late.json"):
        engine.fire_event(Events.STARTED)
    InferredGroups(n_groups=4, groups={"training": [0, 1, 2, 3]}).save(path)
    engine.fire_event(Events.STARTED)
    assert objective.group_loss.n_groups == 4


def test_objective_pixelwise_losses_averaged_per_sample():
    gen = torch.Generator().manual_seed(1)
    pred = torch.randn(3, 2, 4, 5, generator=gen, requires_grad=True)
    target = torch.randint(0, 2, (3, 1, 4, 5), generator=gen).float()  # a channel-first supervision mask
    groups = torch.tensor([1, 0, 1])
    objective = GroupDROObjective(ChannelCrossEntropyLoss(reduction="none"), n_groups=2, step_size=0.4)
    engine = Engine(lambda e, b: None)
    objective.attach(engine)
    engine.state.batch = {"group": groups}
    loss = objective(pred, target)
    # independent per-pixel cross-entropy, averaged over the H x W pixels of each sample
    log_p = torch.log_softmax(pred.detach().double(), dim=1)
    per_pixel = -log_p.gather(1, target.long()).squeeze(1)
    per_sample = per_pixel.mean(dim=(1, 2)).numpy()
    expected = _ReferenceDRO(2, 0.4)(per_sample, groups.numpy())
    assert loss.item() == pytest.approx(expected, rel=1e-5)
    loss.backward()  # the gradient flows to the network output
    assert pred.grad is not None and bool(pred.grad.abs().sum() > 0)


def test_objective_with_decollating_trainer():
    # MONAI's default decollate=True splits engine.state.batch only after the iteration: the loss still sees the
    # collated group ids
    n_groups = 3
    objective = GroupDROObjective(ChannelCrossEntropyLoss(reduction="none"), n_groups=n_groups, step_size=0.5)
    data = _trainer_data(n_groups=n_groups)
    torch.manual_seed(0)
    network = torch.nn.Linear(3, 2)
    trainer = SupervisedTrainer(
        device=torch.device("cpu"), max_epochs=1, train_data_loader=DataLoader(Dataset(data), batch_size=4),
        network=network, optimizer=torch.optim.SGD(network.parameters(), lr=0.0), loss_function=objective,
        train_handlers=[objective])
    trainer.run()
    # lr = 0: the network never changes, so the reference can replay the three batches afterwards
    reference = _ReferenceDRO(n_groups, 0.5)
    with torch.no_grad():
        for start in range(0, 12, 4):
            batch = data[start:start + 4]
            pred = network(torch.stack([item["image"] for item in batch]))
            reference(_cross_entropy(pred, torch.stack([item["label"] for item in batch])),
                      [int(item["group"]) for item in batch])
    q = [trainer.state.metrics[f"dro_q_{g}"] for g in range(n_groups)]
    assert q == pytest.approx(reference.q.tolist(), abs=1e-6)
