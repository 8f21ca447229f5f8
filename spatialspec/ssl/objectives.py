"""Training objectives of the two cost-robustness methods (Saab et al. 2022, Sec. 4.2):

* :class:`SemiSupervisedObjective` (Seg-SSL, Sec. 4.2.1, after Hooper et al. 2022): cross-entropy on the labelled
  images (step 1; step 2 adds the pseudo-labelled ones) plus an image-level cosine embedding loss between the
  embeddings of two random views of each unlabelled image;
* :class:`PixelSimilarityObjective` (Seg-SPL, Sec. 4.2.2): cross-entropy plus ``spl_weight`` times
  :class:`spatialspec.losses.PixelSimilarityLoss` over the positively-labelled pixels' embeddings.

Both are the ``loss_function`` of a MONAI ``SupervisedTrainer``; the embeddings are read with a
:class:`spatialspec.ssl.FeatureMapHook` on the decoder's last feature map before the head (see
:mod:`spatialspec.ssl.features`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from monai.utils import convert_to_tensor, min_version, optional_import
from torch import nn

from spatialspec.losses.cross_entropy import ChannelCrossEntropyLoss
from spatialspec.losses.pixel_similarity import PixelSimilarityLoss

from .augment import RandomFlipIntensity, apply_flips
from .features import FeatureMapHook

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["ImageSimilarityLoss", "SemiSupervisedObjective", "PixelSimilarityObjective", "labels_at"]


def labels_at(labels: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """``B x 1 x spatial`` 0/1 labels at the spatial ``size`` of a feature map: the fraction of positive pixels each
    feature-map pixel covers (area interpolation), so that :class:`spatialspec.losses.PixelSimilarityLoss` counts a
    feature-map pixel as positive when more than half of it is (it thresholds at 0.5). Unchanged at equal size."""
    labels = convert_to_tensor(labels, track_meta=False).float()
    if tuple(labels.shape[2:]) == tuple(size):
        return labels
    return F.interpolate(labels, size=tuple(size), mode="area")


class ImageSimilarityLoss(nn.Module):
    """The image-level cosine embedding loss of Seg-SSL (Sec. 4.2.1): ``mean_i (1 - cos(e(v1_i), e(v2_i)))`` over
    the images ``i`` of two views, where ``e`` turns a ``D x spatial`` feature map into one vector per image.

    Args:
        embedding: ``"flatten"`` (default): the whole feature map, every pixel's features, as one vector, so the
            loss asks the two views to agree pixel by pixel once their flips are undone (the similarity "over all
            pixels" the paper contrasts with Seg-SPL's positive-pixel loss); ``"mean"``: the spatial mean
            (global average pooling), which ignores where features are.
        eps: lower bound of a vector's norm.

    Example:
        >>> loss = ImageSimilarityLoss()
        >>> a = torch.ones(2, 3, 4, 4)
        >>> float(loss(a, 2 * a))  # same direction: no loss
        0.0
    """

    def __init__(self, embedding: str = "flatten", eps: float = 1e-8) -> None:
        super().__init__()
        if embedding not in ("flatten", "mean"):
            raise ValueError(f"embedding must be 'flatten' or 'mean', got {embedding!r}")
        self.embedding, self.eps = embedding, float(eps)

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        """The loss of two aligned views ``B x D x spatial...`` (a scalar)."""
        if first.shape != second.shape or first.ndim < 3:
            raise ValueError(f"the two views' feature maps must be B x D x spatial... of equal shape, got "
                             f"{tuple(first.shape)} and {tuple(second.shape)}")
        if self.embedding == "mean":
            u, v = first.flatten(2).mean(dim=2), second.flatten(2).mean(dim=2)
        else:
            u, v = first.flatten(1), second.flatten(1)
        return (1.0 - F.cosine_similarity(u.float(), v.float(), dim=1, eps=self.eps)).mean()


class _EpochMeans:
    """Running means of named loss terms over an epoch, put in ``engine.state.metrics`` at its end."""

    def __init__(self, prefix: str) -> None:
        self.prefix, self.sums, self.counts = prefix, {}, {}

    def add(self, name: str, value: torch.Tensor) -> None:
        # summed on the value's device: no host synchronisation in the training step, one per term at epoch end
        self.sums[name] = self.sums.get(name, 0.0) + value.detach().double()
        self.counts[name] = self.counts.get(name, 0) + 1

    def report(self, engine: Engine) -> None:
        for name, total in self.sums.items():
            engine.state.metrics[f"{self.prefix}_{name}"] = float(total) / self.counts[name]
        self.sums, self.counts = {}, {}


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
        self.means = _EpochMeans("ssl")
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


class PixelSimilarityObjective:
    """The ``loss_function`` of Seg-SPL (Sec. 4.2.2): ``CE(pred, label) + spl_weight * PixelSimilarityLoss``.

    The pixel-similarity loss pulls together the embeddings of the batch's positively-labelled pixels, read from the
    trainer's own forward pass by a :class:`FeatureMapHook` (by default the decoder's last feature map before the
    head; see :mod:`spatialspec.ssl.features`). Where that map is coarser than the labels (MONAI ``UNet``: half
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
        self.means = _EpochMeans("spl")

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
