"""Cross-entropy for both pixel-wise (segmentation-style) and image-level supervision (Sec. 3.3.2, App. A.1)."""

from __future__ import annotations

import torch
from monai.data import MetaTensor
from torch import nn

__all__ = ["ChannelCrossEntropyLoss"]


class ChannelCrossEntropyLoss(nn.CrossEntropyLoss):
    """:class:`torch.nn.CrossEntropyLoss` that accepts MONAI's channel-first targets.

    ``input`` holds logits ``B x C`` (a classifier) or ``B x C x H x W`` (a pixel-wise network). ``target`` may be
    class indices of shape ``B`` / ``B x H x W`` or a channel-first label ``B x 1 (x H x W)`` of any numeric
    dtype (a supervision mask from :class:`spatialspec.transforms.SpecificityLabeld`), which is squeezed and cast
    to ``long``. All arguments of :class:`torch.nn.CrossEntropyLoss` are accepted.
    """

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: A002
        # plain tensors: the loss is a number, not an image, and must not carry (batched) image metadata
        if isinstance(input, MetaTensor):
            input = input.as_tensor()  # noqa: A001
        target = target.as_tensor() if isinstance(target, MetaTensor) else torch.as_tensor(target)
        target = target.to(input.device)
        if target.ndim == input.ndim and target.shape[1] == 1:
            target = target.squeeze(1)
        if target.ndim != input.ndim - 1:
            raise ValueError(f"ChannelCrossEntropyLoss: target shape {tuple(target.shape)} does not match input "
                             f"shape {tuple(input.shape)} (expected B{''.join(' x ' + str(d) for d in input.shape[2:])}"
                             " class indices or a 1-channel label)")
        if target.is_floating_point():
            target = target.round()
        return super().forward(input, target.long())
