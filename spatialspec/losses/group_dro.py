"""Group distributionally robust loss (Sagawa et al. 2020), the robust objective of GEORGE (Sohoni et al. 2020),
one of the paper's baselines on binary labels (Saab et al. 2022, Table 1, App. A.2). GEORGE's trainer objective over
its inferred groups is :class:`spatialspec.robust.george.GroupDROObjective`."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from spatialspec._deprecated import moved_names

__all__ = ["GroupDROLoss"]

__getattr__ = moved_names(__name__, {"GroupDROObjective": "spatialspec.robust.george.GroupDROObjective"})


class GroupDROLoss(nn.Module):
    """Online group DRO: an exponentiated-gradient update of group weights q, then the q-weighted group loss.

    Per batch, with ``L_g`` the mean per-sample loss of group g in the batch (0 if absent):
    ``logit_g += step_size * (L_g + size_adjustment / sqrt(n_g))``; ``q = softmax(logits)``; the loss is
    ``sum_g q_g * L_g`` (q carries no gradient). ``n_g`` is ``group_counts[g]`` (the training-set group sizes, as in
    the generalisation adjustment of Sagawa et al.) when given, else the group's count in the batch.

    Which groups move follows the reference code of Sagawa et al. (``LossComputer.compute_robust_loss`` of
    kohpangwei/group_DRO): with ``group_counts`` every group is updated on every batch, a group absent from the batch
    with ``L_g = 0``, so its weight still grows by ``exp(step_size * size_adjustment / sqrt(n_g))`` relative to a
    group with zero loss and no adjustment (small groups gain weight between their appearances). Two departures,
    both only where the reference is undefined or a constant: a group with ``group_counts[g] == 0`` (no training
    sample, which the reference would divide by) is updated only if it appears in a batch, with ``n_g = 1``; and
    without ``group_counts`` only the groups present are updated (an absent group has no batch count to adjust
    by). The returned loss is ``sum_g q_g L_g``; the reference also adds ``sum_g q_g C / sqrt(n_g)`` to the value
    it returns (an in-place addition), a constant of the network's parameters that changes no gradient.

    The weights move only in training mode (``loss_fn.train()``, the default); in eval mode the current q is used
    as it is.

    Args:
        n_groups: number of groups; group ids lie in ``[0, n_groups)``.
        step_size: the exponentiated-gradient step (eta_q).
        size_adjustment: the generalisation adjustment C (the paper's baselines use 3).
        group_counts: training-set size of each group (>= 0), for the adjustment.

    Example:
        >>> loss_fn = GroupDROLoss(n_groups=2, step_size=0.1)
        >>> loss = loss_fn(torch.tensor([1.0, 3.0]), torch.tensor([0, 1]))
        >>> loss_fn.q  # the harder group gains weight
        tensor([0.4502, 0.5498])
    """

    def __init__(self, n_groups: int, step_size: float = 0.01, size_adjustment: float = 0.0,
                 group_counts: Sequence[int] | torch.Tensor | None = None) -> None:
        super().__init__()
        if not isinstance(n_groups, int) or n_groups < 1:
            raise ValueError(f"n_groups must be an integer >= 1, got {n_groups!r}")
        if step_size < 0:
            raise ValueError(f"step_size must be >= 0, got {step_size!r}")
        if size_adjustment < 0:
            raise ValueError(f"size_adjustment must be >= 0, got {size_adjustment!r}")
        self.n_groups = n_groups
        self.step_size = float(step_size)
        self.size_adjustment = float(size_adjustment)
        counts = None
        if group_counts is not None:
            counts = torch.as_tensor(group_counts, dtype=torch.float32)
            if counts.shape != (n_groups,) or bool((counts < 0).any()):
                raise ValueError(f"group_counts must hold {n_groups} counts >= 0, got {group_counts!r}")
        self.register_buffer("group_counts", counts)
        self.register_buffer("logits", torch.zeros(n_groups))

    @property
    def q(self) -> torch.Tensor:
        """The current group weights, softmax of the logits (sums to 1)."""
        return torch.softmax(self.logits, dim=0)

    def forward(self, per_sample_loss: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """The group-DRO loss of a batch.

        Args:
            per_sample_loss: float tensor of N per-sample losses (``reduction="none"``).
            groups: long tensor of N group ids in ``[0, n_groups)``.
        """
        losses = per_sample_loss.reshape(-1)
        groups = torch.as_tensor(groups, device=losses.device).reshape(-1).long()
        if groups.numel() != losses.numel():
            raise ValueError(f"per_sample_loss and groups must have the same length, got {losses.numel()} and "
                             f"{groups.numel()}")
        if groups.numel() and (int(groups.min()) < 0 or int(groups.max()) >= self.n_groups):
            raise ValueError(f"group ids must lie in [0, {self.n_groups}), got {groups.unique().tolist()}")
        one_hot = nn.functional.one_hot(groups, self.n_groups).to(losses.dtype)  # N x G
        batch_counts = one_hot.sum(dim=0)
        present = batch_counts > 0
        group_loss = (one_hot * losses[:, None]).sum(dim=0) / batch_counts.clamp(min=1)
        if self.training:
            with torch.no_grad():
                if self.group_counts is not None:  # the reference: every group with training samples moves
                    counts = self.group_counts.to(losses.device)
                    update = present | (counts > 0)
                else:
                    counts, update = batch_counts, present
                step = group_loss.detach() + self.size_adjustment / counts.clamp(min=1).sqrt()
                self.logits += self.step_size * torch.where(update, step, torch.zeros_like(step))
        return (self.q.detach().to(losses.dtype) * group_loss).sum()
