"""Mixed supervision of a pixel-wise network (issue 15, Sec. 3): the pixel loss on the images that carry a location
label, a multiple-instance image-level loss on the others (Saab et al. 2022, Sec. 4: location labels for some images,
binary labels for the rest)."""

from __future__ import annotations

import torch
from monai.data import MetaTensor
from torch import nn

from spatialspec.losses.cross_entropy import ChannelCrossEntropyLoss
from spatialspec.transforms.scores import batch_image_score, parse_score

__all__ = ["MixedSupervisionLoss"]


def _plain(x: torch.Tensor) -> torch.Tensor:
    return x.as_tensor() if isinstance(x, MetaTensor) else torch.as_tensor(x)


class MixedSupervisionLoss(nn.Module):
    """Pixel loss where a location label exists, multiple-instance loss on the image score elsewhere.

    For a batch of ``B`` images with logits ``z_i`` (``C x H x W``), location labels ``m_i``, flags ``h_i`` (1: the
    image carries a location label, any level; 0: only its image label ``y_i``):

    .. math::

        L = \\frac{1}{B} \\Big[ \\sum_{i: h_i = 1} \\ell_{pix}(z_i, m_i)
            + \\lambda \\sum_{i: h_i = 0} -\\big(y_i \\log s_i + (1 - y_i) \\log (1 - s_i)\\big) \\Big]

    where ``l_pix`` is the pixel loss (the segmentation bundle's ``loss``, a mean over the image's pixels) and
    ``s_i`` the image score (:func:`spatialspec.transforms.batch_image_score` with ``score``: mean, max or topk:K) of
    the abnormal class's softmax probability map, clamped to ``[eps, 1 - eps]``: the level's image score read as a
    multiple-instance prediction of ``y`` (binary cross-entropy). Each image counts once, whichever term it is in.

    Args:
        pixel_loss: the pixel loss; a mean over pixels (default :class:`ChannelCrossEntropyLoss`).
        score: the image score of the study (``mean``, ``max``, ``topk:K``).
        mil_weight: ``lambda``, the weight of the image-level term.
        eps: the clamp of the score inside the logarithms.

    Raises:
        ValueError: naming ``score``, ``mil_weight`` or ``eps`` when invalid.

    Example:
        >>> loss = MixedSupervisionLoss()
        >>> z = torch.zeros(2, 2, 4, 4)  # every probability 0.5
        >>> round(loss(z, torch.zeros(2, 1, 4, 4), torch.tensor([1, 0]), torch.tensor([0, 1])).item(), 4)
        0.6931
    """

    def __init__(self, pixel_loss: nn.Module | None = None, score: str = "mean", mil_weight: float = 1.0,
                 eps: float = 1e-6) -> None:
        super().__init__()
        parse_score(score)
        if not float(mil_weight) >= 0:
            raise ValueError(f"mil_weight must be >= 0, got {mil_weight!r}")
        if not 0 < float(eps) < 0.5:
            raise ValueError(f"eps must be in (0, 0.5), got {eps!r}")
        self.pixel_loss = pixel_loss if pixel_loss is not None else ChannelCrossEntropyLoss()
        self.score, self.mil_weight, self.eps = score, float(mil_weight), float(eps)

    def terms(self, pred: torch.Tensor, label: torch.Tensor, has_location: torch.Tensor, y: torch.Tensor
              ) -> tuple[torch.Tensor, torch.Tensor]:
        """The two sums of :math:`L` divided by ``B`` (pixel term, unweighted image-level term); see the class.

        Raises:
            ValueError: when ``has_location`` or ``y`` is not one value per image of ``pred``.
        """
        pred, label = _plain(pred), _plain(label)
        size = pred.shape[0]
        has = _plain(has_location).to(pred.device).reshape(-1) > 0
        target = _plain(y).to(pred.device).reshape(-1).float()
        if has.numel() != size or target.numel() != size:
            raise ValueError(f"MixedSupervisionLoss: has_location ({has.numel()}) and y ({target.numel()}) must hold "
                             f"one value per image of the batch ({size})")
        zero = pred.sum() * 0.0
        pixel = self.pixel_loss(pred[has], label.to(pred.device)[has]) * (has.sum() / size) if has.any() else zero
        if has.all():
            return pixel, zero
        prob = torch.softmax(pred[~has].float(), dim=1)
        s = batch_image_score(prob, self.score, channel=pred.shape[1] - 1).clamp(self.eps, 1 - self.eps)
        t = target[~has]
        mil = -(t * torch.log(s) + (1 - t) * torch.log(1 - s)).sum() / size
        return pixel, mil

    def forward(self, pred: torch.Tensor, label: torch.Tensor, has_location: torch.Tensor, y: torch.Tensor
                ) -> torch.Tensor:
        """:math:`L` of the batch.

        Args:
            pred: logits ``B x C x H x W``.
            label: location labels ``B x 1 x H x W`` (read where ``has_location`` is 1 only).
            has_location: ``B`` flags.
            y: ``B`` image labels (0 or 1).
        """
        pixel, mil = self.terms(pred, label, has_location, y)
        return pixel + self.mil_weight * mil
