"""Supervised pixel-level similarity loss of Seg-SPL (Saab et al., Sec. 4.2.2): pull together the embeddings of the
positively-labelled pixels of a batch."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["PixelSimilarityLoss"]


class PixelSimilarityLoss(nn.Module):
    """Minus the mean cosine similarity over all ordered pairs ``(i, j), i != j`` of positively-labelled pixel
    embeddings in the batch (Sec. 4.2.2).

    With ``u_i = f(x_i) / max(|f(x_i)|, eps)`` the unit embeddings of the ``P`` positive pixels,
    ``sum_{i != j} u_i . u_j = |sum_i u_i|^2 - sum_i |u_i|^2``, so the loss
    ``-(|sum_i u_i|^2 - sum_i |u_i|^2) / (P (P - 1))`` costs O(P D) time and memory instead of the O(P^2 D) of the
    pairwise sum. The paper writes the normaliser as ``1 / |B|`` (B the set of positive pixels) in front of the pair
    sum; the mean over the ``P (P - 1)`` ordered pairs used here keeps the loss in ``[-1, 1]`` whatever the batch's
    number of positive pixels. Pairs span the whole batch (pixels of different images included), as in the paper.

    With fewer than 2 positive pixels there is no pair: the loss is 0, still attached to the graph (zero gradients,
    no NaN). A zero embedding has ``u_i = 0`` (similarity 0 to every other pixel) thanks to ``eps``. Half-precision
    embeddings are summed in float32 (the pair sum reaches ``P^2``); the loss is float32 then.

    Args:
        eps: lower bound of an embedding's norm in the normalisation.

    Shapes:
        embeddings: ``B x D x spatial...`` (e.g. ``B x D x H x W``), the encoder's pixel embeddings f(x).
        labels: ``B x 1 x spatial...`` with the same spatial size; a pixel is positive where its label is > 0.5
            (labels are 0/1).

    Raises:
        ValueError: naming ``embeddings`` or ``labels`` when the shapes do not match these.

    Example:
        >>> loss_fn = PixelSimilarityLoss()
        >>> emb = torch.tensor([[1.0, 0.0], [1.0, 1.0]]).T.reshape(1, 2, 1, 2)  # two pixels at 45 degrees
        >>> round(loss_fn(emb, torch.ones(1, 1, 1, 2)).item(), 4)  # -cos(45 deg)
        -0.7071
    """

    def __init__(self, eps: float = 1e-8) -> None:
        super().__init__()
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps!r}")
        self.eps = float(eps)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The loss of one batch (a scalar tensor)."""
        if embeddings.ndim < 3:
            raise ValueError(f"embeddings must be B x D x spatial... (at least 3 dimensions), got shape "
                             f"{tuple(embeddings.shape)}")
        if labels.ndim != embeddings.ndim or labels.shape[1] != 1:
            raise ValueError(f"labels must be B x 1 x spatial... with one channel, got shape {tuple(labels.shape)} "
                             f"for embeddings of shape {tuple(embeddings.shape)}")
        if labels.shape[0] != embeddings.shape[0] or labels.shape[2:] != embeddings.shape[2:]:
            raise ValueError(f"labels shape {tuple(labels.shape)} does not match embeddings shape "
                             f"{tuple(embeddings.shape)} in batch size or spatial size")
        dtype = torch.promote_types(embeddings.dtype, torch.float32)
        emb = embeddings.to(dtype)
        weights = (labels > 0.5).to(dtype)  # B x 1 x spatial
        norms = torch.linalg.vector_norm(emb, dim=1, keepdim=True).clamp_min(self.eps)
        units = emb / norms  # B x D x spatial
        reduce_dims = [0, *range(2, emb.ndim)]
        total = (units * weights).sum(dim=reduce_dims)  # D: the sum of the positive unit embeddings
        self_terms = (units.square().sum(dim=1, keepdim=True) * weights).sum()  # sum_i |u_i|^2
        count = weights.sum()
        pairs = count * (count - 1)
        mean = (total.square().sum() - self_terms) / pairs.clamp_min(1.0)
        return torch.where(count >= 2, -mean, torch.zeros_like(mean))
