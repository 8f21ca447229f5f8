"""The trainer objective of mixed supervision (issue 15, Sec. 3): :class:`spatialspec.losses.MixedSupervisionLoss`
wired to the batch's ``has_location`` and ``y`` keys."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from monai.utils import min_version, optional_import

from spatialspec.handlers.batch_keys import batch_keys
from spatialspec.handlers.epoch_means import EpochMeans
from spatialspec.losses.mixed_supervision import MixedSupervisionLoss

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["MixedSupervisionObjective"]


class MixedSupervisionObjective:
    """``loss_function(pred, label)`` of a ``SupervisedTrainer`` that is also an ignite handler (list it in
    ``+train#attached``): the flags and image labels are extra batch keys, read from ``engine.state.batch`` on each
    call, as :class:`spatialspec.guided.MaskGuidedObjective` reads its location labels. The terms' epoch means are
    reported as ``<prefix>_pixel`` and ``<prefix>_mil``, and the share of the epoch's images with a location label as
    ``<prefix>_located``. Validation and checkpoint selection keep the plain pixel loss (``loss``), as Seg-ERM.

    Args:
        loss: the :class:`spatialspec.losses.MixedSupervisionLoss`.
        has_location_key, label_key: the batch keys of the flags and of the image labels ``y``.
        prefix: the reported metrics' prefix.

    Raises:
        ValueError: naming ``loss`` when it is not a :class:`MixedSupervisionLoss`.
    """

    def __init__(self, loss: MixedSupervisionLoss, has_location_key: str = "has_location", label_key: str = "y",
                 prefix: str = "mixed") -> None:
        if not isinstance(loss, MixedSupervisionLoss):
            raise ValueError(f"loss must be a spatialspec.losses.MixedSupervisionLoss, got {type(loss).__name__}")
        self.loss, self.has_location_key, self.label_key = loss, has_location_key, label_key
        self.means = EpochMeans(prefix)
        self._engine: Engine | None = None

    def attach(self, engine: Engine) -> None:
        """Bind to the trainer and report the terms' epoch means."""
        self._engine = engine
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.means.report)

    def __call__(self, pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """The loss of the batch the network has just predicted."""
        found = batch_keys(self, self._engine, [self.has_location_key, self.label_key],
                           hint="see bundles/segmentation/configs/mixed.yaml, train#data")
        has, y = torch.as_tensor(found[self.has_location_key]), torch.as_tensor(found[self.label_key])
        pixel, mil = self.loss.terms(pred, label, has, y)
        self.means.add("pixel", pixel)
        self.means.add("mil", mil)
        self.means.add("located", (has > 0).double().mean())
        return pixel + self.loss.mil_weight * mil
