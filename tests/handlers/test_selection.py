"""Model-selection rules (spatialspec.handlers.selection) in a real MONAI SupervisedEvaluator driven by a trainer.

The network's output is scripted per epoch: a trainer handler writes the epoch into the network's one parameter
before validation, and the network returns that epoch's logits ``[0, z]`` for the 8 validation images (two per
(y, s) subgroup). The epochs are built so that every rule has a different best epoch (figures by hand below), and
the parameter saved in ``model.pt`` names the epoch whose weights were kept.
"""

from __future__ import annotations

import math
import operator

import pytest
import torch
from ignite.engine import Engine, Events
from ignite.handlers import Checkpoint
from monai.data import DataLoader, Dataset
from monai.engines import SupervisedEvaluator
from monai.handlers import CheckpointSaver, ValidationHandler

from spatialspec.errors import InputError
from spatialspec.handlers import (
    SELECTION_RULES,
    STUDY_RULES,
    ConvergenceMonitor,
    ModelSelection,
    SelectionCheckpointSaver,
)
from spatialspec.handlers.selection import KEY_METRIC_MODES, compare_fn, keep_latest
from spatialspec.losses import ChannelCrossEntropyLoss
from spatialspec.metrics import subgroup_aurocs

# (y, s) of the 8 validation images: (0,0) x 2, (0,1) x 2, (1,0) x 2, (1,1) x 2
Y = [0, 0, 0, 0, 1, 1, 1, 1]
S = [0, 0, 1, 1, 0, 0, 1, 1]
# the abnormal-class logit z per epoch (score sigmoid(z)):
# 1: every (negative, positive) pair AUROC 0.75 -> robust 0.75, worst pair 0.75 (the first maximum), loss 0.573
# 2: confident, one positive tied with the negatives -> robust 0.75, worst 0.75 (a tie), loss 0.424 (smallest)
# 3: the robust pair (y0s1 vs y1s0) perfect, the pair y0s0 vs y1s1 reversed -> robust 1, worst 0, loss 0.573
# 4: everything reversed -> robust 0, worst 0, loss 2.127 (the last epoch)
Z = {1: [-1.0, 0.5, -1.0, 0.5, 0.0, 1.0, 0.0, 1.0],
     2: [-3.0, -3.0, -3.0, -3.0, 3.0, -3.0, 3.0, 3.0],
     3: [0.0, 0.0, -1.0, -1.0, 1.0, 1.0, -0.5, -0.5],
     4: [2.0, 2.0, 2.0, 2.0, -2.0, -2.0, -2.0, -2.0]}
EXPECTED_EPOCH = {"val_loss": 2, "val_robust_auroc": 3, "val_worst_group_auroc": 1, "last": 4, "val_overall_auroc": 2}


def _loss(z: list[float]) -> float:
    """Mean cross-entropy of logits [0, z] against Y, by hand."""
    return sum(math.log1p(math.exp(-v)) if y else math.log1p(math.exp(v)) for v, y in zip(z, Y)) / len(Y)


class ScriptedNetwork(torch.nn.Module):
    """Returns epoch ``round(tag)``'s logits for the images (each image holds its index)."""

    def __init__(self) -> None:
        super().__init__()
        self.tag = torch.nn.Parameter(torch.zeros(1), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = torch.tensor(Z[int(round(self.tag.item()))])[x.reshape(-1).long()]
        return torch.stack([torch.zeros_like(z), z], dim=1)


def _score(output: dict) -> dict:
    return {**output, "score": torch.softmax(output["pred"], dim=1)[:, 1]}


def _run(rule: str, tmp_path, patience: int = 2, until_converged: bool = False, epochs: int = 4):
    return _run_with_saver(rule, tmp_path, patience, until_converged, epochs)[:3]


def _run_with_saver(rule: str, tmp_path, patience: int = 2, until_converged: bool = False, epochs: int = 4,
                    **saver_args):
    """``_run``, and its SelectionCheckpointSaver (of ``selection``, or of ``saver_args`` when given)."""
    network = ScriptedNetwork()
    selection = ModelSelection(rule, loss=ChannelCrossEntropyLoss())
    saver = SelectionCheckpointSaver(str(tmp_path), {"model": network}, None if saver_args else selection,
                                     filename="model.pt", **saver_args)
    data = [{"image": torch.tensor([float(i)]), "label": torch.tensor(Y[i]), "y": Y[i], "s": S[i]} for i in range(8)]
    evaluator = SupervisedEvaluator(
        device=torch.device("cpu"), val_data_loader=DataLoader(Dataset(data), batch_size=4), network=network,
        postprocessing=_score, key_val_metric=selection.key_metric(),
        additional_metrics=selection.additional_metrics(), metric_cmp_fn=saver.metric_cmp_fn, decollate=False,
        val_handlers=[saver])
    trainer = Engine(lambda engine, batch: None)
    trainer.add_event_handler(Events.EPOCH_COMPLETED, lambda e: network.tag.data.fill_(float(e.state.epoch)))
    ValidationHandler(interval=1, validator=evaluator).attach(trainer)
    monitor = ConvergenceMonitor(evaluator, patience=patience, until_converged=until_converged)
    monitor.attach(trainer)
    trainer.run([0], max_epochs=epochs)
    return evaluator, monitor, trainer, saver


def test_scripted_epochs_are_what_the_comments_say():
    for epoch, z in Z.items():
        score = [1 / (1 + math.exp(-v)) for v in z]
        figures = subgroup_aurocs(score, Y, S)
        assert (figures["robust_auroc"], figures["worst_pair_auroc"]) == {
            1: (0.75, 0.75), 2: (0.75, 0.75), 3: (1.0, 0.0), 4: (0.0, 0.0)}[epoch]
    losses = {epoch: _loss(z) for epoch, z in Z.items()}
    assert min(losses, key=losses.get) == 2 and losses[3] > losses[2] and losses[4] == max(losses.values())


@pytest.mark.parametrize("rule", [*STUDY_RULES, "val_overall_auroc"])
def test_each_rule_keeps_its_epoch(rule, tmp_path):
    evaluator, _, _ = _run(rule, tmp_path)
    expected = EXPECTED_EPOCH[rule]
    assert evaluator.state.key_metric_name == SELECTION_RULES[rule].metric
    assert evaluator.state.best_metric_epoch == expected
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert saved["tag"].item() == expected  # model.pt holds that epoch's weights
    assert list(tmp_path.iterdir()) == [tmp_path / "model.pt"]
    if rule in ("val_loss", "last"):
        assert evaluator.state.best_metric == pytest.approx(_loss(Z[expected]), rel=1e-5)
    # the validation loss and the robust-AUROC figures are computed under every rule
    assert {"val_loss", "val_robust_auroc", "val_worst_pair_auroc", "val_overall_auroc"} <= set(evaluator.state.metrics)
    assert evaluator.state.metrics["val_loss"] == pytest.approx(_loss(Z[4]), rel=1e-5)


def test_worst_group_rule_is_the_worst_pair_auroc(tmp_path):
    evaluator, _, _ = _run("val_worst_group_auroc", tmp_path)
    metrics = evaluator.state.metrics
    assert metrics["val_worst_group_auroc"] == metrics["val_worst_pair_auroc"] == 0.0  # epoch 4's figures
    assert "val_worst_group_auroc_overall_auroc" not in metrics


def test_convergence_history_under_any_rule(tmp_path):
    _, monitor, _ = _run("val_robust_auroc", tmp_path, patience=2)
    assert [e for e, _ in monitor.history] == [1, 2, 3, 4]
    assert [v for _, v in monitor.history] == pytest.approx([_loss(Z[e]) for e in range(1, 5)], rel=1e-5)
    # best loss at epoch 2 of 4: converged with patience 2, not with patience 3
    assert monitor.best_epoch == 2 and monitor.converged
    _, monitor, _ = _run("val_loss", tmp_path / "p3", patience=3)
    assert not monitor.converged
    assert monitor.summary() == {"converged": False, "val_loss_best_epoch": 2, "epochs_trained": 4,
                                 "stopped_early": False, "patience": 3}


def test_until_converged_stops_patience_epochs_after_the_best(tmp_path):
    # best loss at epoch 2; epochs 3 and 4 do not improve: with patience 2 training stops after epoch 4 of 10
    evaluator, monitor, trainer = _run("val_loss", tmp_path, patience=2, until_converged=True, epochs=10)
    assert trainer.state.epoch == 4
    assert monitor.summary() == {"converged": True, "val_loss_best_epoch": 2, "epochs_trained": 4,
                                 "stopped_early": True, "patience": 2}
    assert evaluator.state.best_metric_epoch == 2


def test_selection_properties():
    loss = ChannelCrossEntropyLoss()
    assert ModelSelection("val_loss", loss).negative_sign
    assert not ModelSelection("val_robust_auroc", loss).negative_sign
    assert ModelSelection("last", loss).metric_cmp_fn is keep_latest
    assert keep_latest(1.0, 0.5) and keep_latest(0.5, 1.0)
    key = ModelSelection("val_mean_dice", loss, num_classes=2).key_metric()
    assert list(key) == ["val_mean_dice"]
    assert list(ModelSelection("val_mean_dice", loss, num_classes=2).additional_metrics()) == ["val_loss",
                                                                                              "val_robust_auroc"]
    assert list(ModelSelection("val_overall_auroc", loss).additional_metrics()) == ["val_loss"]


@pytest.mark.parametrize("kwargs, message", [
    ({"rule": "best"}, "val_loss, val_robust_auroc"), ({"rule": "val_mean_dice"}, "num_classes"),
    ({"rule": "val_loss", "loss": None}, "loss")])
def test_selection_errors(kwargs, message):
    kwargs = {"loss": ChannelCrossEntropyLoss(), **kwargs}
    with pytest.raises(InputError, match=message):
        ModelSelection(**kwargs)


@pytest.mark.parametrize("rule", [*STUDY_RULES, "val_overall_auroc"])
def test_saver_record_names_the_kept_epoch_and_round_trips(rule, tmp_path):
    evaluator, _, _, saver = _run_with_saver(rule, tmp_path)
    record = saver.state_dict()
    expected = EXPECTED_EPOCH[rule]
    assert (record["key_metric"], record["mode"]) == (SELECTION_RULES[rule].metric, SELECTION_RULES[rule].mode)
    assert record["best_metric_epoch"] == expected == evaluator.state.best_metric_epoch
    assert record["best_metric"] == pytest.approx(evaluator.state.best_metric, rel=1e-6)
    assert len(record["saved"]) == 1  # one file, model.pt
    if rule == "last":
        assert record["saved"][0][0] == 4.0  # the priority is the epoch
    elif rule == "val_loss":
        assert record["saved"][0][0] == pytest.approx(-_loss(Z[expected]), rel=1e-5)  # negated: smaller is better
    fresh = SelectionCheckpointSaver(str(tmp_path / "other"), {"model": torch.nn.Linear(1, 1)},
                                     ModelSelection(rule, loss=ChannelCrossEntropyLoss()))
    fresh.load_state_dict(torch.load(_saved(tmp_path, record), weights_only=True))
    assert fresh.state_dict() == record


def _saved(tmp_path, record: dict):
    """``record`` through torch.save and a weights-only load, as the ResumeHandler stores it."""
    path = tmp_path / "record.pt"
    torch.save(record, path)
    return path


def test_saver_reads_monais_key_metric_checkpoint(tmp_path):
    """The one private MONAI attribute SelectionCheckpointSaver reads: fails if MONAI renames or retypes it."""
    plain = CheckpointSaver(str(tmp_path), {"model": torch.nn.Linear(1, 1)}, save_key_metric=True)
    assert isinstance(plain._key_metric_checkpoint, Checkpoint)
    saver = SelectionCheckpointSaver(str(tmp_path), {"model": torch.nn.Linear(1, 1)},
                                     ModelSelection("last", loss=ChannelCrossEntropyLoss()))
    assert saver._key_metric_record is saver._key_metric_checkpoint
    assert saver._key_metric_record.score_function.__name__ == "_epoch"


@pytest.mark.parametrize("mode, cmp, epoch", [("min", operator.lt, 2), ("max", operator.gt, 4),
                                              ("last", keep_latest, 4)])
def test_one_mode_sets_sign_and_comparison(mode, cmp, epoch, tmp_path):
    """A saver of a key metric and mode (no selection rule): the evaluator's comparison is the saver's, and both pick
    the same epoch (the validation loss is smallest at epoch 2, largest at epoch 4)."""
    assert compare_fn(mode) is cmp and mode in KEY_METRIC_MODES
    evaluator, _, _, saver = _run_with_saver("val_loss", tmp_path, key_metric_name="val_loss", key_metric_mode=mode)
    assert saver.metric_cmp_fn is cmp
    assert evaluator.state.best_metric_epoch == saver.best_metric_epoch == epoch
    assert torch.load(tmp_path / "model.pt", weights_only=True)["tag"].item() == epoch


def test_saver_arguments_are_checked(tmp_path):
    net = {"model": torch.nn.Linear(1, 1)}
    selection = ModelSelection("val_loss", loss=ChannelCrossEntropyLoss())
    with pytest.raises(InputError, match="not both"):
        SelectionCheckpointSaver(str(tmp_path), net, selection, key_metric_mode="min")
    with pytest.raises(InputError, match="needs a selection"):
        SelectionCheckpointSaver(str(tmp_path), net, key_metric_name="val_loss")
    with pytest.raises(InputError, match="'lowest' is not a key-metric mode"):
        SelectionCheckpointSaver(str(tmp_path), net, key_metric_name="val_loss", key_metric_mode="lowest")
    with pytest.raises(InputError, match="key_metric_mode"):
        compare_fn("lowest")
