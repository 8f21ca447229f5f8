"""Model selection: one rule decides which epoch's weights a run keeps as ``models/model.pt`` (Saab et al. 2022,
Sec. 3.3.2: the checkpoint with the smallest validation loss; App. A.2: the baselines' worst-group selection).

A bundle names its rule in one top-level setting, ``select``, and builds everything that depends on it from a
:class:`ModelSelection`: the evaluator's key metric and additional metrics, its ``metric_cmp_fn`` (and so
``best_metric_epoch``) and the checkpoint saver (:class:`SelectionCheckpointSaver`). The validation loss is computed
under every rule, so that convergence can be checked (:class:`spatialspec.handlers.ConvergenceMonitor`).

Rules (:data:`SELECTION_RULES`):

- ``val_loss``: the smallest validation loss (the paper's rule for the specificity levels; reads no spurious label,
  as Sec. 5 assumes of the validation data);
- ``val_robust_auroc``: the largest validation robust AUROC (reads ``s`` on the validation split);
- ``val_worst_group_auroc``: the largest validation worst-group AUROC, i.e. the worst-pair AUROC of
  :func:`spatialspec.metrics.subgroup_aurocs` (the smallest AUROC of a negative (y=0, s) group against a positive
  (y=1, s') group: AUROC needs both classes, so a single (y, s) group has none; reads ``s``);
- ``last``: the final epoch's weights (no selection);
- ``val_overall_auroc``: the largest overall validation AUROC (App. A.1's binary model; ISIC, whose validation split
  has no robust subset);
- ``val_mean_dice``: the largest validation mean Dice against the level's supervision (App. A.1's pixel-wise models;
  pixel-wise bundles only).

A study applies one of :data:`STUDY_RULES` to every run (``spatialspec study --select``).

Every rule has one mode (:data:`KEY_METRIC_MODES`: ``min``, ``max`` or ``last``), and the mode alone decides both
the evaluator's comparison (:func:`compare_fn`) and the checkpoint saver's sign: a bundle never sets
``key_metric_negative_sign`` and ``metric_cmp_fn`` separately. An evaluator outside model selection (e.g. a method's
first stage) names its key metric and mode on a :class:`SelectionCheckpointSaver` and takes its comparison from it.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ignite.handlers import Checkpoint
from monai.handlers import CheckpointSaver, IgniteMetricHandler, MeanDice, from_engine
from monai.utils import is_scalar

from spatialspec.errors import InputError
from spatialspec.selection_rules import STUDY_RULES  # the rules a study offers, defined free of torch

from .robust_auroc import RobustAUROC

if TYPE_CHECKING:
    from ignite.engine import Engine

__all__ = ["SelectionRule", "SELECTION_RULES", "STUDY_RULES", "KEY_METRIC_MODES", "ModelSelection",
           "SelectionCheckpointSaver", "keep_latest", "compare_fn"]

#: the name of the validation loss in the evaluator's metrics, computed under every rule
VAL_LOSS = "val_loss"


@dataclass(frozen=True)
class SelectionRule:
    """A model-selection rule.

    Args:
        name: the rule's name (the value of a bundle's ``select`` setting).
        metric: the evaluator metric the rule reads (its key metric).
        mode: ``min`` (smallest is best), ``max`` (largest is best) or ``last`` (every epoch replaces the previous).
        reads_spurious: whether the rule reads the spurious label ``s`` of the validation split.
    """

    name: str
    metric: str
    mode: str
    reads_spurious: bool


SELECTION_RULES: dict[str, SelectionRule] = {rule.name: rule for rule in (
    SelectionRule("val_loss", VAL_LOSS, "min", False),
    SelectionRule("val_robust_auroc", "val_robust_auroc", "max", True),
    SelectionRule("val_worst_group_auroc", "val_worst_group_auroc", "max", True),
    SelectionRule("last", VAL_LOSS, "last", False),
    SelectionRule("val_overall_auroc", "val_overall_auroc", "max", False),
    SelectionRule("val_mean_dice", "val_mean_dice", "max", False),
)}
# the figure of spatialspec.metrics.subgroup_aurocs each AUROC rule reads
_AUROC_FIGURES = {"val_robust_auroc": "robust_auroc", "val_worst_group_auroc": "worst_pair_auroc",
                  "val_overall_auroc": "overall_auroc"}


def keep_latest(current: float, best: float) -> bool:
    """The ``metric_cmp_fn`` of the ``last`` rule: every validation is the new best, so ``best_metric_epoch`` is the
    last validated epoch."""
    return True


#: the modes of a key metric: ``min`` (smallest is best), ``max`` (largest is best), ``last`` (the latest epoch)
KEY_METRIC_MODES = ("min", "max", "last")


def _check_mode(mode: str) -> str:
    if mode not in KEY_METRIC_MODES:
        raise InputError(f"key_metric_mode: {mode!r} is not a key-metric mode; use one of "
                         f"{', '.join(KEY_METRIC_MODES)}")
    return mode


def compare_fn(mode: str) -> Callable[[float, float], bool]:
    """An evaluator's ``metric_cmp_fn`` for a key-metric ``mode``: ``operator.lt`` (min), ``operator.gt`` (max) or
    :func:`keep_latest` (last). The checkpoint saver of the same mode negates the metric for ``min`` only, so the
    two agree on the best epoch.

    Raises:
        InputError: naming ``mode`` when it is not one of :data:`KEY_METRIC_MODES`.
    """
    return {"min": operator.lt, "max": operator.gt, "last": keep_latest}[_check_mode(mode)]


class ModelSelection:
    """The metrics, comparison and checkpoint sign of a model-selection rule (Sec. 3.3.2, App. A.2).

    Args:
        rule: a name of :data:`SELECTION_RULES`.
        loss: the validation loss function (the bundle's ``loss``), for ``val_loss``; computed under every rule.
        score_key: the key of the image score in the evaluator output (for the AUROC figures).
        num_classes: the network's output channels, for ``val_mean_dice`` (pixel-wise bundles).

    Raises:
        InputError: naming the rule when it is unknown, or ``num_classes`` when ``val_mean_dice`` lacks it.

    Example (bundle config)::

        select: val_loss
        selection: {_target_: spatialspec.handlers.ModelSelection, rule: "@select", loss: "@loss"}
        validate:
          key_metric: "$@selection.key_metric()"
          additional_metrics: "$@selection.additional_metrics()"
          evaluator: {..., metric_cmp_fn: "$@selection.metric_cmp_fn"}
    """

    def __init__(self, rule: str = "val_loss", loss: Callable | None = None, score_key: str = "score",
                 num_classes: int | None = None) -> None:
        if rule not in SELECTION_RULES:
            raise InputError(f"select: {rule!r} is not a model-selection rule; use one of "
                             f"{', '.join(SELECTION_RULES)}")
        if loss is None:
            raise InputError("ModelSelection needs the validation loss function (loss), computed under every rule")
        if rule == "val_mean_dice" and num_classes is None:
            raise InputError("select: val_mean_dice needs num_classes (the network's output channels): it applies "
                             "to the pixel-wise bundles only")
        self.rule = rule
        self.loss = loss
        self.score_key = score_key
        self.num_classes = num_classes

    @property
    def spec(self) -> SelectionRule:
        """The :class:`SelectionRule` of :attr:`rule`."""
        return SELECTION_RULES[self.rule]

    @property
    def key_metric_name(self) -> str:
        """The evaluator's key metric: the rule's metric (``val_loss`` for ``last``)."""
        return self.spec.metric

    @property
    def negative_sign(self) -> bool:
        """Whether a checkpoint saver negates the key metric (the smaller the better)."""
        return self.spec.mode == "min"

    @property
    def metric_cmp_fn(self) -> Callable[[float, float], bool]:
        """The evaluator's ``metric_cmp_fn``: :func:`compare_fn` of the rule's mode."""
        return compare_fn(self.spec.mode)

    def _loss_metric(self) -> IgniteMetricHandler:
        return IgniteMetricHandler(loss_fn=self.loss, output_transform=from_engine(["pred", "label"]))

    def _auroc_metric(self, figure: str = "robust_auroc") -> RobustAUROC:
        # prefix "val_": the other figures keep their usual names (val_robust_auroc, val_worst_pair_auroc, ...)
        return RobustAUROC(score_key=self.score_key, key=figure, prefix="val_")

    def key_metric(self) -> dict[str, Any]:
        """A fresh ``{name: handler}`` for the evaluator's ``key_val_metric``."""
        name = self.key_metric_name
        if name == VAL_LOSS:
            return {name: self._loss_metric()}
        if name == "val_mean_dice":
            # the argmax prediction against the level's supervision, foreground classes only (App. A.1)
            return {name: MeanDice(include_background=False, num_classes=self.num_classes,
                                   output_transform=_argmax_and_label)}
        return {name: self._auroc_metric(_AUROC_FIGURES[self.rule])}

    def additional_metrics(self) -> dict[str, Any]:
        """A fresh ``{name: handler}`` for the evaluator's ``additional_metrics``: the validation loss (unless it is
        the key metric) and the robust-AUROC figures (unless the key metric already writes them)."""
        metrics: dict[str, Any] = {}
        if self.key_metric_name != VAL_LOSS:
            metrics[VAL_LOSS] = self._loss_metric()
        if self.rule not in _AUROC_FIGURES:
            metrics["val_robust_auroc"] = self._auroc_metric()
        return metrics


def _argmax_and_label(output: Mapping[str, Any]) -> tuple[Any, Any]:
    return output["pred"].argmax(dim=1, keepdim=True), output["label"]


def _epoch(engine: Engine) -> float:
    return float(engine.state.epoch)


class SelectionCheckpointSaver(CheckpointSaver):
    """MONAI's :class:`~monai.handlers.CheckpointSaver` on an evaluator, keeping the checkpoint a
    :class:`ModelSelection` chooses in one file: the best key metric with the rule's sign, or, for ``last``, the
    latest epoch (the saver's priority is then the epoch, so every validation replaces the file).

    Without a ``selection``, ``key_metric_name`` and ``key_metric_mode`` name the key metric and its mode (e.g. a
    method's first-stage evaluator); :attr:`metric_cmp_fn` is then the evaluator's comparison, so the one mode sets
    both the sign and the comparison.

    The saver's selection record (:meth:`state_dict` / :meth:`load_state_dict`: the kept file's key metric and
    epoch, and ignite's list of saved files) goes into a :class:`~spatialspec.handlers.ResumeHandler`'s
    ``save_dict``, so that a resumed run keeps ``model.pt`` the best of all its epochs (Sec. 3.3.2), e.g.
    ``save_dict: {network: "@network", optimizer: "@optimizer", selection: "@validate#saver"}``.

    Args:
        save_dir: the checkpoint folder (the bundles' ``ckpt_dir``).
        save_dict: the objects to save, e.g. ``{"model": network}``.
        selection: the rule's :class:`ModelSelection`, or ``None`` to give ``key_metric_name`` and
            ``key_metric_mode``.
        filename: the file name (``model.pt``).
        key_metric_name: the evaluator metric to select on, without a ``selection``.
        key_metric_mode: its mode (:data:`KEY_METRIC_MODES`), without a ``selection``.
        kwargs: further :class:`~monai.handlers.CheckpointSaver` arguments (not the key-metric ones).

    Raises:
        InputError: when both or neither of ``selection`` and (``key_metric_name``, ``key_metric_mode``) are given,
            or the mode is unknown.

    Example (a first-stage evaluator, bundle config)::

        initial:
          saver: {_target_: spatialspec.handlers.SelectionCheckpointSaver, save_dir: "@ckpt_dir",
                  save_dict: {model: "@initial#network"}, filename: initial_model.pt,
                  key_metric_name: initial_val_loss, key_metric_mode: min}
          evaluator: {..., metric_cmp_fn: "$@initial#saver.metric_cmp_fn", val_handlers: ["@initial#saver"]}
    """

    def __init__(self, save_dir: str, save_dict: dict, selection: ModelSelection | None = None,
                 filename: str = "model.pt", key_metric_name: str | None = None, key_metric_mode: str | None = None,
                 **kwargs: Any) -> None:
        if selection is not None:
            if key_metric_name is not None or key_metric_mode is not None:
                raise InputError("SelectionCheckpointSaver: give a selection or key_metric_name and key_metric_mode, "
                                 "not both")
            key_metric_name, key_metric_mode = selection.key_metric_name, selection.spec.mode
        elif key_metric_name is None or key_metric_mode is None:
            raise InputError("SelectionCheckpointSaver needs a selection, or key_metric_name and key_metric_mode")
        self.selection = selection
        self.key_metric_name = key_metric_name
        self.mode = _check_mode(key_metric_mode)
        super().__init__(save_dir=save_dir, save_dict=save_dict, save_key_metric=True,
                         key_metric_name=key_metric_name, key_metric_filename=filename,
                         key_metric_negative_sign=self.mode == "min", **kwargs)
        if self.mode == "last":
            self._key_metric_record.score_function = _epoch
        #: the key metric and epoch of the weights in the file (``nan`` and ``-1`` before the first save)
        self.best_metric = math.nan
        self.best_metric_epoch = -1

    @property
    def _key_metric_record(self) -> Checkpoint:
        # The one private access to MONAI here: CheckpointSaver keeps its key-metric ignite Checkpoint in
        # `_key_metric_checkpoint` and offers load_state_dict but no state_dict (nor a public score function).
        # tests/handlers/test_selection.py fails if MONAI renames or retypes it.
        record = self._key_metric_checkpoint
        if not isinstance(record, Checkpoint):
            raise TypeError("MONAI's CheckpointSaver no longer keeps its key-metric Checkpoint in "
                            "_key_metric_checkpoint: update SelectionCheckpointSaver._key_metric_record")
        return record

    @property
    def metric_cmp_fn(self) -> Callable[[float, float], bool]:
        """The evaluator's ``metric_cmp_fn`` that agrees with this saver's sign: :func:`compare_fn` of its mode."""
        return compare_fn(self.mode)

    def metrics_completed(self, engine: Engine) -> None:
        """Save the checkpoint if the key metric improved (MONAI's handler) and note the kept epoch's metric."""
        before = self._key_metric_record.state_dict()["_saved"]
        super().metrics_completed(engine)
        if self._key_metric_record.state_dict()["_saved"] != before:
            value = engine.state.metrics.get(self.key_metric_name)
            self.best_metric = float(value) if is_scalar(value) else math.nan
            self.best_metric_epoch = int(engine.state.epoch)

    def state_dict(self) -> dict[str, Any]:
        """The selection record, as plain values (loads with ``torch.load(..., weights_only=True)``): ``key_metric``
        and ``mode``, the ``best_metric`` and ``best_metric_epoch`` of the weights in the file, and ``saved``: the
        ``[priority, file name]`` pairs of ignite's :class:`~ignite.handlers.Checkpoint` (the priority is the signed
        key metric, or the epoch for ``last``)."""
        return {"key_metric": self.key_metric_name, "mode": self.mode, "best_metric": float(self.best_metric),
                "best_metric_epoch": int(self.best_metric_epoch),
                "saved": [[float(p), str(f)] for p, f in self._key_metric_record.state_dict()["_saved"]]}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore a record of :meth:`state_dict`; ``saved`` is required, the other entries are optional (a record
        mapped from an older resume checkpoint holds ``saved`` alone).

        Raises:
            ValueError: when the record is of another key metric or mode, or holds no ``saved`` list.
        """
        if "saved" not in state_dict:
            raise ValueError("a SelectionCheckpointSaver record needs its 'saved' list")
        for name, mine in (("key_metric", self.key_metric_name), ("mode", self.mode)):
            if state_dict.get(name, mine) != mine:
                raise ValueError(f"the selection record is of {name} {state_dict[name]!r}, this saver's is {mine!r}")
        super().load_state_dict({"_saved": [(float(p), str(f)) for p, f in state_dict["saved"]]})
        self.best_metric = float(state_dict.get("best_metric", math.nan))
        self.best_metric_epoch = int(state_dict.get("best_metric_epoch", -1))
