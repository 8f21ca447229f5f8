"""Random views of a batch for the image-level similarity loss of Seg-SSL (Saab et al. 2022, Sec. 4.2.1, after
Hooper et al. 2022): per-image random flips and intensity jitter, drawn and applied on the whole batch at once."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["RandomFlipIntensity", "apply_flips"]


def apply_flips(tensor: torch.Tensor, flips: torch.Tensor) -> torch.Tensor:
    """Flip each item of ``tensor`` (``B x C x spatial...``) along the spatial axes where ``flips`` (``B x S``
    booleans, one column per spatial axis) is true. A flip is its own inverse, so applying the same ``flips`` to a
    network's feature maps maps them back to the original image's orientation (at any resolution).

    Raises:
        ValueError: naming ``flips`` when its shape does not match ``tensor``.
    """
    n_spatial = tensor.ndim - 2
    if flips.ndim != 2 or flips.shape[0] != tensor.shape[0] or flips.shape[1] > n_spatial:
        raise ValueError(f"flips must be B x S booleans with B = {tensor.shape[0]} and S <= {n_spatial}, got shape "
                         f"{tuple(flips.shape)}")
    out = tensor
    shape = (-1,) + (1,) * (tensor.ndim - 1)
    for axis in range(flips.shape[1]):
        chosen = flips[:, axis].to(device=tensor.device, dtype=torch.bool).reshape(shape)
        out = torch.where(chosen, out.flip(axis + 2), out)
    return out


class RandomFlipIntensity:
    """Random view of a batch: each image is flipped along each spatial axis with probability ``flip_prob``, then
    its intensities become ``x * a + b * std(x)`` with ``a ~ U(1 - scale, 1 + scale)`` and ``b ~ U(-shift, shift)``,
    plus Gaussian noise of ``noise * std(x)`` (``std`` per image, so the jitter is relative to the image's own
    contrast). Random numbers come from torch's global generator (seeded by ``monai.utils.set_determinism``).

    Args:
        spatial_axes: spatial axes (0-based, after batch and channel) that may be flipped; ``()`` for none.
        flip_prob: probability of a flip along each of those axes.
        scale: relative contrast jitter.
        shift: brightness jitter, in units of the image's standard deviation.
        noise: standard deviation of additive noise, in the same units.

    Returns (when called on a ``B x C x spatial...`` batch):
        the augmented batch and the ``B x len(spatial_axes)`` boolean flips (columns follow ``spatial_axes``
        sorted; see :meth:`flip_matrix` to turn them into the ``B x S`` matrix :func:`apply_flips` takes).
    """

    def __init__(self, spatial_axes: Sequence[int] = (0, 1), flip_prob: float = 0.5, scale: float = 0.1,
                 shift: float = 0.1, noise: float = 0.0) -> None:
        if not 0.0 <= float(flip_prob) <= 1.0:
            raise ValueError(f"flip_prob must lie in [0, 1], got {flip_prob!r}")
        if not 0.0 <= float(scale) < 1.0:
            raise ValueError(f"scale must lie in [0, 1), got {scale!r}")
        for name, value in (("shift", shift), ("noise", noise)):
            if not float(value) >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        axes = sorted({int(a) for a in spatial_axes})
        if any(a < 0 for a in axes):
            raise ValueError(f"spatial_axes must be >= 0, got {list(spatial_axes)}")
        self.spatial_axes, self.flip_prob = axes, float(flip_prob)
        self.scale, self.shift, self.noise = float(scale), float(shift), float(noise)

    def flip_matrix(self, draws: torch.Tensor, n_spatial: int) -> torch.Tensor:
        """Spread the ``B x len(spatial_axes)`` draws into a ``B x n_spatial`` flip matrix."""
        matrix = torch.zeros(draws.shape[0], n_spatial, dtype=torch.bool, device=draws.device)
        for column, axis in enumerate(self.spatial_axes):
            matrix[:, axis] = draws[:, column]
        return matrix

    def __call__(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment ``images``; returns the view and its ``B x S`` flip matrix (``S`` spatial dimensions)."""
        if images.ndim < 3:
            raise ValueError(f"images must be B x C x spatial..., got shape {tuple(images.shape)}")
        n_spatial = images.ndim - 2
        if self.spatial_axes and self.spatial_axes[-1] >= n_spatial:
            raise ValueError(f"spatial_axes {self.spatial_axes} exceed the {n_spatial} spatial axes of the images")
        batch, device = images.shape[0], images.device
        draws = torch.rand(batch, len(self.spatial_axes), device=device) < self.flip_prob
        flips = self.flip_matrix(draws, n_spatial)
        out = apply_flips(images, flips)
        shape = (batch,) + (1,) * (images.ndim - 1)
        std = out.detach().flatten(1).std(dim=1).reshape(shape).clamp_min(1e-6)
        gain = 1.0 + self.scale * (2.0 * torch.rand(shape, device=device) - 1.0)
        offset = self.shift * (2.0 * torch.rand(shape, device=device) - 1.0) * std
        out = out * gain + offset
        if self.noise > 0:
            out = out + self.noise * std * torch.randn_like(out)
        return out, flips
