"""Image-level cosine embedding loss of Seg-SSL (Saab et al. 2022, Sec. 4.2.1, after Hooper et al. 2022): two views
of each image should have the same embedding."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ImageSimilarityLoss"]


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
