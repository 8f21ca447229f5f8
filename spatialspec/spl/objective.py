"""The training objective of Seg-SPL (Saab et al. 2022, Sec. 4.2.2): cross-entropy plus ``spl_weight`` times
:class:`spatialspec.losses.PixelSimilarityLoss` over the embeddings of the batch's positively-labelled pixels, read by
a :class:`spatialspec.networks.FeatureMapHook` from the trainer's own forward pass."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from monai.utils import convert_to_tensor, min_version, optional_import
from torch import nn

from spatialspec.handlers.epoch_means import EpochMeans
from spatialspec.losses.cross_entropy import ChannelCrossEntropyLoss
from spatialspec.losses.pixel_similarity import PixelSimilarityLoss
from spatialspec.networks.feature_map import FeatureMapHook

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["PixelSimilarityObjective", "labels_at"]


def labels_at(labels: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """``B x 1 x spatial`` 0/1 labels at the spatial ``size`` of a feature map: the fraction of positive pixels each
    feature-map pixel covers (area interpolation), so that :class:`spatialspec.losses.PixelSimilarityLoss` counts a
    feature-map pixel as positive when more than half of it is (it thresholds at 0.5). Unchanged at equal size."""
    labels = convert_to_tensor(labels, track_meta=False).float()
    if tuple(labels.shape[2:]) == tuple(size):
        return labels
    return F.interpolate(labels, size=tuple(size), mode="area")


class PixelSimilarityObjective:
    """The ``loss_function`` of Seg-SPL (Sec. 4.2.2): ``CE(pred, label) + spl_weight * PixelSimilarityLoss``.

    The pixel-similarity loss pulls together the embeddings of the batch's positively-labelled pixels, read from the
    trainer's own forward pass by a :class:`FeatureMapHook` (by default the decoder's last feature map before the
    head; see :mod:`spatialspec.networks.feature_map`). Where that map is coarser than the labels (MONAI ``UNet``: half
    resolution) the labels are brought to its size with :func:`labels_at`.

    Args:
        network: the network the trainer trains.
        spl_weight: weight of the similarity term (the paper tunes it on validation Dice, App. A.1).
        layer, capture: the embedding layer (see :class:`FeatureMapHook`).
        loss: the supervised loss (default :class:`spatialspec.losses.ChannelCrossEntropyLoss`).
    """

    def __init__(self, network: nn.Module, spl_weight: float = 1.0, layer: str | None = None,
                 capture: str = "input", loss: nn.Module | None = None) -> None:
        if not float(spl_weight) >= 0.0:
            raise ValueError(f"spl_weight must be >= 0, got {spl_weight!r}")
        self.spl_weight = float(spl_weight)
        self.hook = FeatureMapHook(network, layer, capture)
        self.loss = loss if loss is not None else ChannelCrossEntropyLoss()
        self.similarity = PixelSimilarityLoss()
        self.means = EpochMeans("spl")

    def attach(self, engine: Engine) -> None:
        """Optional: report the epoch means of both terms as ``spl_ce`` and ``spl_similarity`` metrics."""
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.means.report)

    def __call__(self, pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """The loss of the batch the network has just predicted."""
        ce = self.loss(pred, label)
        features = self.hook.pop()
        self.means.add("ce", ce)
        if self.spl_weight == 0.0:
            return ce
        similarity = self.similarity(features, labels_at(label, tuple(features.shape[2:])).to(features.device))
        self.means.add("similarity", similarity)
        return ce + self.spl_weight * similarity
