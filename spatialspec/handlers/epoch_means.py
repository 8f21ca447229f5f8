"""Epoch means of the terms of a composite training loss, reported as trainer metrics: the objectives of Seg-SSL
and Seg-SPL (Saab et al. 2022, Sec. 4.2) report their cross-entropy and similarity terms this way."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from monai.utils import min_version, optional_import

if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["EpochMeans"]


class EpochMeans:
    """Running means of named loss terms over an epoch; :meth:`report` puts them in ``engine.state.metrics`` as
    ``<prefix>_<name>`` and starts the next epoch afresh (MLflow and the stats handler log them with the other
    trainer metrics).

    Args:
        prefix: the metric names' prefix, e.g. ``"ssl"`` for ``ssl_ce`` and ``ssl_similarity``.

    Example:
        >>> means = EpochMeans("spl")  # trainer.add_event_handler(Events.EPOCH_COMPLETED, means.report)
        >>> means.add("ce", torch.tensor(1.0))
        >>> means.add("ce", torch.tensor(3.0))
        >>> engine = Engine(lambda e, b: None)
        >>> means.report(engine)
        >>> engine.state.metrics
        {'spl_ce': 2.0}
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.sums: dict[str, Any] = {}
        self.counts: dict[str, int] = {}

    def add(self, name: str, value: torch.Tensor) -> None:
        """Add one batch's value of the term ``name`` (a scalar tensor, detached here)."""
        # summed on the value's device: no host synchronisation in the training step, one per term at epoch end
        self.sums[name] = self.sums.get(name, 0.0) + value.detach().double()
        self.counts[name] = self.counts.get(name, 0) + 1

    def report(self, engine: Engine) -> None:
        """Put every term's mean since the last report in ``engine.state.metrics``, then forget them."""
        for name, total in self.sums.items():
            engine.state.metrics[f"{self.prefix}_{name}"] = float(total) / self.counts[name]
        self.sums, self.counts = {}, {}
