"""The counterfactual image of ActDiff (Viviano et al., ICLR 2021): the image with every pixel outside its location
label replaced, so that only the labelled region is left as it was (issue 15)."""

from __future__ import annotations

import torch

__all__ = ["BACKGROUND_MODES", "replace_background"]

#: how :func:`replace_background` fills the pixels outside the location label
BACKGROUND_MODES = ("shuffle", "noise")


def replace_background(images: torch.Tensor, location: torch.Tensor, mode: str = "shuffle",
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """A copy of ``images`` whose pixels outside the location label are replaced, image by image.

    Args:
        images: ``B x C x H x W``.
        location: ``B x 1 x H x W`` (or ``B x H x W``); a pixel is inside the label where it is > 0.5.
        mode: ``"shuffle"``: the image's own outside pixels in a random order (one permutation for all channels, so
            the background keeps its intensity histogram but loses its layout); ``"noise"``: Gaussian noise with the
            mean and standard deviation of each channel's outside pixels (a resampled background).
        generator: the random generator (default: torch's global one, whose state a resumed run restores).

    Returns:
        the new images (same shape, dtype and device); pixels inside the label are unchanged, and so is an image
        whose label covers it.

    Raises:
        ValueError: naming ``mode`` when it is not one of :data:`BACKGROUND_MODES`, or ``location`` when its shape
            does not match ``images``.

    Example:
        >>> x = torch.arange(4.0).reshape(1, 1, 2, 2)
        >>> replace_background(x, torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]]))[0, 0, 0, 0].item()  # kept inside
        0.0
    """
    if mode not in BACKGROUND_MODES:
        raise ValueError(f"mode must be one of {', '.join(BACKGROUND_MODES)}, got {mode!r}")
    location = torch.as_tensor(location)
    if location.ndim == images.ndim - 1:
        location = location.unsqueeze(1)
    if images.ndim != 4 or location.shape != (images.shape[0], 1, *images.shape[2:]):
        raise ValueError(f"location must be B x 1 x H x W for images of shape {tuple(images.shape)}, got shape "
                         f"{tuple(location.shape)}")
    out = images.detach().clone().flatten(2)
    outside = (location.to(images.device) <= 0.5).flatten(1)
    for i in range(images.shape[0]):
        where = torch.nonzero(outside[i]).squeeze(1)
        if where.numel() == 0:
            continue
        values = out[i][:, where]
        if mode == "shuffle":
            order = torch.randperm(where.numel(), generator=generator, device="cpu").to(where.device)
            out[i][:, where] = values[:, order]
        else:
            mean = values.float().mean(dim=1, keepdim=True)
            std = values.float().std(dim=1, keepdim=True, unbiased=False)
            noise = torch.randn(values.shape, generator=generator, device="cpu").to(values.device)
            out[i][:, where] = (mean + std * noise).to(out.dtype)
    return out.reshape(images.shape)
