"""The training objective of GEORGE's second stage (Sohoni et al. 2020; Saab et al. 2022, Table 1, App. A.2): group
DRO (:class:`spatialspec.losses.GroupDROLoss`, Sagawa et al. 2020) over the groups the first stage inferred, as the
``loss_function`` of a MONAI ``SupervisedTrainer``."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import torch
from monai.utils import min_version, optional_import
from torch import nn

from spatialspec.handlers.batch_keys import batch_keys
from spatialspec.losses.group_dro import GroupDROLoss

from .clustering import InferredGroups

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["GroupDROObjective"]


class GroupDROObjective(nn.Module):
    """The ``loss_function`` of a MONAI ``SupervisedTrainer`` that trains with group DRO (GEORGE step 3).

    The trainer calls ``loss_function(pred, label)``; the group ids are an extra batch key, so this object is also
    an ignite handler: list it in ``train#handlers`` as well, and it reads ``engine.state.batch[group_key]`` on every
    call (the groups stay in the batch, not in ``engine.state.output``). The :class:`GroupDROLoss` (uniform q) is
    built when training starts, from the inferred groups of the first stage, so the groups file may be written
    after this object is created. At every epoch end the group weights are put in ``engine.state.metrics`` as
    ``dro_q_<g>`` (MLflow logs them with the other trainer metrics).

    Args:
        loss: per-sample loss module (``reduction="none"``), e.g. ``ChannelCrossEntropyLoss(reduction="none")``;
            pixel-wise losses are averaged per sample.
        groups: an :class:`InferredGroups`, the path of its file, or ``None`` with ``n_groups``.
        n_groups: number of groups when ``groups`` is ``None``.
        step_size, size_adjustment: see :class:`spatialspec.losses.GroupDROLoss` (the paper's baselines: adjustment 3).
        group_key: the batch key holding each sample's group id.
    """

    def __init__(self, loss: nn.Module, groups: Any = None, n_groups: int | None = None, step_size: float = 0.01,
                 size_adjustment: float = 0.0, group_key: str = "group") -> None:
        super().__init__()
        if groups is None and n_groups is None:
            raise ValueError("GroupDROObjective needs groups (inferred groups or their file) or n_groups")
        if getattr(loss, "reduction", "none") != "none":
            raise ValueError(f"GroupDROObjective needs a per-sample loss (reduction='none'), got reduction="
                             f"{loss.reduction!r}")
        self.loss, self.groups, self.n_groups = loss, groups, n_groups
        self.step_size, self.size_adjustment, self.group_key = step_size, size_adjustment, group_key
        self.group_loss: GroupDROLoss | None = None
        self._engine: Engine | None = None

    def build(self) -> GroupDROLoss:
        """Create the :class:`GroupDROLoss` (reads the groups file if one was given); called at training start."""
        counts = None
        if self.groups is not None:
            groups = InferredGroups.load(self.groups) if isinstance(self.groups, (str, os.PathLike)) else self.groups
            # the training-set sizes as they are: an empty group (a cluster no training sample falls in) gets no
            # weight from the size adjustment (GroupDROLoss), where InferredGroups.counts would count it as 1
            self.n_groups = groups.n_groups
            counts = torch.bincount(torch.as_tensor(groups.groups["training"], dtype=torch.long),
                                    minlength=groups.n_groups)
        device = self.group_loss.logits.device if self.group_loss is not None else None
        self.group_loss = GroupDROLoss(int(self.n_groups), self.step_size, self.size_adjustment, counts)
        if device is not None:
            self.group_loss.to(device)
        return self.group_loss

    def attach(self, engine: Engine) -> None:
        """Bind to the trainer: build the DRO loss when it starts, report q after every epoch."""
        self._engine = engine
        engine.add_event_handler(Events.STARTED, lambda _: self.build())
        engine.add_event_handler(Events.EPOCH_COMPLETED, self._report)

    def _report(self, engine: Engine) -> None:
        for g, q in enumerate(self.group_loss.q.tolist()):
            engine.state.metrics[f"dro_q_{g}"] = q

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The group-DRO loss of the current batch."""
        groups = batch_keys(self, self._engine, [self.group_key],
                            hint="wrap the training dataset in spatialspec.robust.george.GroupLabelledDataset")
        if self.group_loss is None:
            self.build()
        per_sample = self.loss(pred, target)
        per_sample = per_sample.reshape(per_sample.shape[0], -1).mean(dim=1) if per_sample.ndim > 1 else per_sample
        self.group_loss.to(per_sample.device)
        return self.group_loss(per_sample, torch.as_tensor(groups[self.group_key]).to(per_sample.device))
