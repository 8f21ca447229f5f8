"""The training objective of Seg-SSL (Saab et al. 2022, Sec. 4.2.1, after Hooper et al. 2022):
:class:`SemiSupervisedObjective`, cross-entropy on the labelled images (step 1; step 2 adds the pseudo-labelled ones)
plus :class:`spatialspec.losses.ImageSimilarityLoss` between the embeddings of two random views of each unlabelled
image. It is the ``loss_function`` of a MONAI ``SupervisedTrainer``; the embeddings are read with a
:class:`spatialspec.networks.FeatureMapHook` on the decoder's last feature map before the head (see
:mod:`spatialspec.networks.feature_map`).

Seg-SPL's objective is :class:`spatialspec.spl.PixelSimilarityObjective`; the old names of this module resolve, with
a ``DeprecationWarning``, until the next release.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from monai.utils import convert_to_tensor, min_version, optional_import
from torch import nn

from spatialspec._deprecated import moved_names
from spatialspec.handlers.epoch_means import EpochMeans
from spatialspec.losses.cross_entropy import ChannelCrossEntropyLoss
from spatialspec.losses.image_similarity import ImageSimilarityLoss
from spatialspec.networks.feature_map import FeatureMapHook

from .augment import RandomFlipIntensity, apply_flips

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["SemiSupervisedObjective"]

__getattr__ = moved_names(__name__, {"PixelSimilarityObjective": "spatialspec.spl.PixelSimilarityObjective",
                                     "labels_at": "spatialspec.spl.labels_at"})


class SemiSupervisedObjective:
    """The ``loss_function`` of a Seg-SSL step (Sec. 4.2.1): ``CE(pred, label) + ssl_weight * ImageSimilarityLoss``.

    * The cross-entropy is the trainer's own, on its batch: the labelled images in step 1, the labelled and the
      pseudo-labelled ones in step 2 (exactly Seg-ERM's loss on that data).
    * The similarity term draws the next batch of ``unlabelled`` images (a data loader, cycled), makes two random
      views of each with ``augment``, runs both through ``network`` in one extra forward pass, reads the feature maps
      with a :class:`FeatureMapHook`, undoes the flips and compares the views with :class:`ImageSimilarityLoss`.

    The unlabelled images go through the network in a forward pass of their own, never in the supervised batch: with
    batch normalisation, a supervised batch padded with unlabelled images (their cross-entropy masked out) trains
    much worse than the labelled images alone (measured on the synthetic data: robust AUROC 0.6 against 0.97 at 10
    labels), because the labelled images' loss then flows through statistics of the unlabelled ones.

    Listed among the trainer's handlers (e.g. through :class:`spatialspec.handlers.AttachToTrainer`), it puts the
    epoch means of both terms in ``engine.state.metrics`` as ``ssl_ce`` and ``ssl_similarity``.

    Args:
        network: the network the trainer trains (the hook is registered on it).
        unlabelled: an iterable of dict batches of the unlabelled images (e.g. a shuffled ``DataLoader``); ``None``
            or an empty one turns the similarity term off.
        ssl_weight: weight of the similarity term (0 turns it off and skips the extra forward pass).
        layer, capture: the embedding layer (see :class:`FeatureMapHook`; ``None``: the decoder's last feature map).
        augment: draws a view, returning ``(images, flips)``; default :class:`RandomFlipIntensity` ``()``.
        embedding: ``"flatten"`` or ``"mean"`` (see :class:`ImageSimilarityLoss`).
        loss: the supervised loss (default :class:`spatialspec.losses.ChannelCrossEntropyLoss`).
        image_key: the batch key of the images in ``unlabelled``.
    """

    def __init__(self, network: nn.Module, unlabelled: Any = None, ssl_weight: float = 1.0, layer: str | None = None,
                 capture: str = "input", augment: Any = None, embedding: str = "flatten",
                 loss: nn.Module | None = None, image_key: str = "image") -> None:
        if not float(ssl_weight) >= 0.0:
            raise ValueError(f"ssl_weight must be >= 0, got {ssl_weight!r}")
        self.network, self.unlabelled, self.ssl_weight = network, unlabelled, float(ssl_weight)
        self.hook = FeatureMapHook(network, layer, capture)
        self.augment = augment if augment is not None else RandomFlipIntensity()
        self.similarity = ImageSimilarityLoss(embedding)
        self.loss = loss if loss is not None else ChannelCrossEntropyLoss()
        self.image_key = image_key
        self.means = EpochMeans("ssl")
        self._iterator: Any = None

    def attach(self, engine: Engine) -> None:
        """Report the epoch means of both terms after every epoch of ``engine`` (the trainer)."""
        engine.add_event_handler(Events.EPOCH_COMPLETED, self.means.report)

    def next_unlabelled(self) -> torch.Tensor | None:
        """The images of the next unlabelled batch (the loader restarts when exhausted); ``None`` if it is empty."""
        if self.unlabelled is None:
            return None
        for restart in (False, True):
            if self._iterator is None or restart:
                self._iterator = iter(self.unlabelled)
            try:
                batch = next(self._iterator)
            except StopIteration:
                continue
            images = batch[self.image_key] if isinstance(batch, dict) else batch
            return convert_to_tensor(images, track_meta=False)
        return None

    def __call__(self, pred: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """The loss of the trainer's current batch plus the similarity term of the next unlabelled batch."""
        ce = self.loss(pred, label)
        self.hook.features = None
        self.means.add("ce", ce)
        images = self.next_unlabelled() if self.ssl_weight > 0.0 else None
        if images is None or images.shape[0] == 0:
            return ce
        images = images.to(convert_to_tensor(pred, track_meta=False).device)
        first, flips_first = self.augment(images)
        second, flips_second = self.augment(images)
        self.network(torch.cat([first, second]))
        features = apply_flips(self.hook.pop(), torch.cat([flips_first, flips_second]))
        similarity = self.similarity(*features.chunk(2))
        self.means.add("similarity", similarity)
        return ce + self.ssl_weight * similarity
