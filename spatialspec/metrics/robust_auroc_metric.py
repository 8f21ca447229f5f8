"""The robust-AUROC figures as a MONAI :class:`~monai.metrics.Cumulative` metric: collects image scores, labels and
spurious labels over a validation or test run, across processes under DDP, and reports every figure of
:func:`spatialspec.metrics.subgroup_aurocs` (Sec. 3.3.2, 5.1); :class:`spatialspec.handlers.RobustAUROC` attaches it to
an engine."""

from __future__ import annotations

from typing import Any

import torch
from monai.metrics import Cumulative
from monai.utils import evenly_divisible_all_gather

from .bootstrap import bootstrap_intervals
from .robust_auroc import subgroup_aurocs

__all__ = ["RobustAUROCMetric"]


class RobustAUROCMetric(Cumulative):
    """Cumulative robust-AUROC metric: collects image scores, labels and spurious labels over iterations (and
    across processes under DDP) and reports every figure of :func:`subgroup_aurocs` (Sec. 3.3.2, 5.1).

    With ``bootstrap`` > 0 it also reports the 95% stratified percentile bootstrap interval of every figure as
    ``<figure>_ci_low`` and ``<figure>_ci_high`` (:func:`spatialspec.metrics.bootstrap_intervals`; about 0.2 s per
    1000 resamples of 1000 images). Off by default: a validation run every epoch rarely needs it.

    Args:
        bootstrap: bootstrap resamples (0: no intervals).
        bootstrap_seed: seed of the resampling generator (the same data and seed give the same bounds).

    Example:
        >>> metric = RobustAUROCMetric()
        >>> metric(torch.tensor([0.9, 0.2, 0.8, 0.1]), torch.tensor([1, 0, 1, 0]), torch.tensor([0, 1, 1, 0]))
        >>> metric.aggregate()["robust_auroc"]
        1.0
    """

    def __init__(self, bootstrap: int = 0, bootstrap_seed: int = 0) -> None:
        super().__init__()
        if isinstance(bootstrap, bool) or not isinstance(bootstrap, int) or bootstrap < 0:
            raise ValueError(f"RobustAUROCMetric: bootstrap must be an integer >= 0, got {bootstrap!r}")
        self.bootstrap = bootstrap
        self.bootstrap_seed = bootstrap_seed

    def __call__(self, y_pred: Any, y: Any, s: Any) -> None:  # type: ignore[override]
        """Add a batch: ``y_pred`` image scores, ``y`` image labels, ``s`` spurious labels (N each), named and ordered
        as in MONAI's :class:`~monai.metrics.ROCAUCMetric` (``y_pred``, ``y``)."""
        tensors = [torch.as_tensor(v).detach().reshape(-1).float().cpu() for v in (y_pred, y, s)]
        if len({t.numel() for t in tensors}) != 1:
            raise ValueError(f"y_pred, y and s must hold one value per image, got sizes "
                             f"{[t.numel() for t in tensors]}")
        self.extend(*tensors)

    def extend(self, *data: Any) -> None:
        """Add a batch of values per buffer, kept as one tensor: MONAI's ``Cumulative.extend`` splits a batch into
        one tensor per image (a Python object per image and buffer, every validation epoch); the buffers read the
        same either way (:meth:`get_buffer`)."""
        if self._buffers is None:
            self._buffers = [[] for _ in data]
        for buffer, values in zip(self._buffers, data):
            buffer.append(torch.as_tensor(values).reshape(-1))
        self._synced = False

    def append(self, *data: Any) -> None:
        """Add one image's values (one value per buffer)."""
        self.extend(*(torch.as_tensor(value).reshape(1) for value in data))

    def _sync(self) -> None:
        """Concatenate each buffer's batches and gather them across processes (as ``Cumulative._sync`` stacks its
        per-image tensors)."""
        if self._synced or self._buffers is None:
            return
        self._synced_tensors = [evenly_divisible_all_gather(torch.cat(buffer), concat=True)
                                for buffer in self._buffers]
        self._synced = True

    def aggregate(self) -> dict[str, float]:  # type: ignore[override]
        """The figures over everything added since the last ``reset`` (and their ``_ci_low`` / ``_ci_high`` bounds
        when ``bootstrap`` > 0)."""
        buffers = self.get_buffer()
        if not isinstance(buffers, list) or not buffers or buffers[0] is None or buffers[0].numel() == 0:
            raise ValueError("RobustAUROCMetric.aggregate: no data was added")
        score, y, s = (b.numpy() for b in buffers)
        result = subgroup_aurocs(score, y, s)
        if self.bootstrap:
            for figure, (low, high) in bootstrap_intervals(score, y, s, self.bootstrap, self.bootstrap_seed).items():
                result[f"{figure}_ci_low"], result[f"{figure}_ci_high"] = low, high
        return result
