"""Where the model looks: saliency maps of a trained checkpoint and the share of their mass on known regions (issue 16,
section 4; beyond Saab et al. 2022, whose synthetic data model, Sec. 3.2.2, places the spurious block S and the
abnormality Y at known pixels).

Methods (MONAI's :mod:`monai.visualize`):

- ``gradcam``: :class:`monai.visualize.GradCAM` of the abnormal class (index 1) of a classifier (``B x 2`` logits),
  at the deepest top-level layer whose feature map is still at least ``8 x 8`` (:func:`gradcam_layer`; ``layer4`` of
  the bundles' ResNet is ``3 x 3`` on ``40 x 40`` images, ``layer2`` is ``10 x 10``), upsampled bilinearly to the
  image and not normalised (the raw ``ReLU`` map).
- ``input_gradient``: :class:`monai.visualize.VanillaGrad` (Simonyan et al. 2014): the absolute gradient of the image
  score (:class:`ImageScoreNet`: the readout of :func:`spatialspec.audit.network_score_fn`) with respect to the
  pixels, the largest over the image channels.
- ``occlusion``: :class:`monai.visualize.OcclusionSensitivity` of the image score: non-overlapping square windows
  (``occlusion_size`` pixels) each replaced by the image's mean; a pixel's saliency is the score drop
  ``score(x) - score(x with its window occluded)`` clipped at 0. Unlike the gradient it does not vanish where the
  network saturates (a pixel-wise model that has learned the spurious block is flat inside it).

Shares (:func:`region_shares`): the positive saliency mass (maps clipped at 0) summed over the spurious mask S, the
abnormality mask Y and the rest, each divided by the image's total. A pixel in both masks counts as **spurious**
(on the synthetic data the blocks never overlap). Images whose total is 0 have no shares (NaN).
"""

from __future__ import annotations

import os
import textwrap
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spatialspec.atomic import save_figure_atomic
from spatialspec.transforms.scores import batch_image_score, parse_score

from .counterfactual import spatial_mask
from .data import load_array

__all__ = ["SALIENCY_METHODS", "ImageScoreNet", "is_classifier", "default_method", "gradcam_layer", "saliency_maps",
           "region_shares", "mean_shares", "pick_images", "write_overlays", "audit_saliency",
           "summarize_shares"]

SALIENCY_METHODS = ("gradcam", "input_gradient", "occlusion")
REGIONS = ("spurious", "abnormality", "elsewhere")


class ImageScoreNet(nn.Module):
    """A network as a two-class model of its image score: ``B x 2`` = ``[1 - score, score]``, the score being the
    softmax class-1 probability of a classifier or, for a pixel-wise network, its class-1 probability map reduced by
    ``score`` (``mean``, ``max``, ``topk:K``; :func:`spatialspec.transforms.batch_image_score`). MONAI's
    class-index saliency (``VanillaGrad``, ``OcclusionSensitivity``) then explains the image score of any model.

    Args:
        network: the trained network (``B x 2`` logits or ``B x 2 x H x W`` maps).
        score: the image-score readout of a pixel-wise network.
    """

    def __init__(self, network: nn.Module, score: str = "mean") -> None:
        super().__init__()
        parse_score(score)
        self.network, self.score = network, score

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B x 2`` image-score "probabilities" of ``x``."""
        out = self.network(x)
        out = out.as_tensor() if hasattr(out, "as_tensor") else out
        value = batch_image_score(torch.softmax(out.float(), dim=1), self.score)
        return torch.stack([1.0 - value, value], dim=1)


def is_classifier(network: nn.Module, image_shape: Sequence[int]) -> bool:
    """Whether ``network`` gives one output per image (``B x C``) for a ``C x H x W`` image, not a map."""
    with torch.no_grad():
        out = network(torch.zeros(1, *image_shape, device=next(network.parameters()).device))
    return out.ndim == 2


def default_method(classifier: bool) -> str:
    """``gradcam`` for a classifier, ``occlusion`` for a pixel-wise network (its gradient vanishes inside a learned
    spurious block; module doc)."""
    return "gradcam" if classifier else "occlusion"


def gradcam_layer(network: nn.Module, image_shape: Sequence[int], min_size: int = 8) -> str:
    """The deepest top-level child of ``network`` whose output is a feature map at least ``min_size`` pixels on each
    side for a ``C x H x W`` image (``layer2`` of the bundles' ResNet on ``40 x 40`` images).

    Raises:
        ValueError: naming the network's class when no child gives such a map (pass the layer explicitly).
    """
    sizes: dict[str, tuple[int, ...]] = {}
    hooks = [module.register_forward_hook(lambda m, a, out, name=name: sizes.__setitem__(name, tuple(out.shape)))
             for name, module in network.named_children()]
    try:
        with torch.no_grad():
            network(torch.zeros(1, *image_shape, device=next(network.parameters()).device))
    finally:
        for hook in hooks:
            hook.remove()
    fits = [name for name, shape in sizes.items() if len(shape) == 4 and min(shape[2:]) >= min_size]
    if not fits:
        raise ValueError(f"no layer of the {type(network).__name__} gives a feature map of at least {min_size} x "
                         f"{min_size} pixels for images of shape {tuple(image_shape)}: name one (--target-layer)")
    return fits[-1]


def saliency_maps(network: nn.Module, images: np.ndarray, method: str, score: str = "mean", layer: str | None = None,
                  occlusion_size: int = 4) -> np.ndarray:
    """Non-negative saliency maps, ``B x H x W``, of the ``B x C x H x W`` images (module doc for the methods).

    Args:
        network: the trained network, on the device the maps are computed on.
        images: float32 channel-first images.
        method: ``gradcam`` (classifiers only), ``input_gradient`` or ``occlusion``.
        score: the image score explained by ``input_gradient`` and ``occlusion``.
        layer: Grad-CAM's layer (default :func:`gradcam_layer`).
        occlusion_size: side of the occluded window, in pixels.

    Raises:
        ValueError: naming ``method`` when it is unknown or does not apply to the network.
    """
    from monai.visualize import GradCAM, OcclusionSensitivity, VanillaGrad

    if method not in SALIENCY_METHODS:
        raise ValueError(f"saliency method must be one of {', '.join(SALIENCY_METHODS)}, got {method!r}")
    device = next(network.parameters()).device
    x = torch.as_tensor(np.asarray(images, dtype=np.float32), device=device)
    network = network.eval()
    if method == "gradcam":
        if not is_classifier(network, x.shape[1:]):
            raise ValueError("saliency method 'gradcam' explains a classifier's class logit; this network outputs a "
                             "map: use input_gradient or occlusion")
        cam = GradCAM(network, target_layers=layer or gradcam_layer(network, x.shape[1:]),
                      postprocessing=lambda m: m)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Full backward hook is firing", UserWarning)  # the input needs no grad
            maps = cam(x, class_idx=1)[:, 0]
    else:
        wrapped = ImageScoreNet(network, score).eval()
        per_image = []
        for image in x:
            if method == "input_gradient":
                per_image.append(VanillaGrad(wrapped)(image[None].clone(), index=1)[0].abs().amax(dim=0))
                continue
            with torch.no_grad(), warnings.catch_warnings():
                warnings.filterwarnings("ignore", "Using a non-tuple sequence", UserWarning)  # inside MONAI
                original = wrapped(image[None])[0, 1]
                occluded, _ = OcclusionSensitivity(wrapped, mask_size=occlusion_size, n_batch=128, verbose=False,
                                                   mode="mean_img", overlap=0.0, activate=False)(image[None])
            per_image.append(original - occluded[0, 1])
        maps = torch.stack(per_image)
    return maps.detach().clamp(min=0).cpu().numpy().astype(np.float64)


def region_shares(maps: np.ndarray, spurious: np.ndarray, abnormality: np.ndarray) -> np.ndarray:
    """Per image, the shares of the positive saliency mass on S, on Y and elsewhere: ``B x 3``, rows summing to 1.

    Args:
        maps: ``B x H x W`` saliency (clipped at 0 here).
        spurious, abnormality: ``B x H x W`` boolean masks; a pixel in both counts as spurious.

    Returns:
        ``B x 3`` (spurious, abnormality, elsewhere); NaN rows for images without positive mass.

    Raises:
        ValueError: when the shapes differ.
    """
    maps = np.clip(np.asarray(maps, dtype=np.float64), 0.0, None)
    spurious, abnormality = np.asarray(spurious, bool), np.asarray(abnormality, bool)
    if maps.ndim != 3 or spurious.shape != maps.shape or abnormality.shape != maps.shape:
        raise ValueError(f"maps {maps.shape}, spurious {spurious.shape} and abnormality {abnormality.shape} masks "
                         "must all be B x H x W")
    on_s = (maps * spurious).sum(axis=(1, 2))
    on_y = (maps * (abnormality & ~spurious)).sum(axis=(1, 2))
    total = maps.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.stack([on_s, on_y, total - on_s - on_y], axis=1) / total[:, None]
    shares[total <= 0] = np.nan
    return shares


def mean_shares(shares: np.ndarray) -> dict[str, float | None]:
    """``share_spurious``, ``share_abnormality``, ``share_elsewhere``: the mean of the per-image shares over the
    images with positive mass (``None`` when there is none)."""
    valid = shares[~np.isnan(shares).any(axis=1)] if len(shares) else shares
    return {f"share_{region}": (float(valid[:, i].mean()) if len(valid) else None) for i, region in enumerate(REGIONS)}


def _has(entry: Mapping[str, Any], key: str) -> bool:
    return entry.get(key) is not None and bool((load_array(entry, key) > 0.5).any())


def pick_images(entries: Sequence[Mapping[str, Any]], per_group: int, max_share_images: int
                ) -> tuple[list[tuple[int, tuple[int, int]]], list[int]]:
    """Which entries to show and which to measure, first ones first (deterministic).

    Returns:
        ``(overlay, shares)``: ``per_group`` entries per (y, s) subgroup as ``(index, (y, s))``, subgroups in the
        order (0, 0), (0, 1), (1, 0), (1, 1) (``y`` and ``s`` read from the entry or, when absent, from whether its
        abnormality / spurious mask is non-empty); and up to ``max_share_images`` indices of the entries with both a
        non-empty spurious mask and a non-empty abnormality mask (``label``): the images on which a model can look
        at either (none when the data has no such masks).
    """
    groups: dict[tuple[int, int], list[int]] = {(y, s): [] for y in (0, 1) for s in (0, 1)}
    shares: list[int] = []
    for i, entry in enumerate(entries):
        has_s, has_y = _has(entry, "spurious_mask"), _has(entry, "label")
        group = (int(entry.get("y", has_y)), int(entry.get("s", has_s)))
        if len(groups.setdefault(group, [])) < per_group:
            groups[group].append(i)
        if len(shares) < max_share_images and has_s and has_y:
            shares.append(i)
    return [(i, group) for group, members in groups.items() for i in members], shares


def write_overlays(entries: Sequence[Mapping[str, Any]], groups: Sequence[tuple[int, int]], maps: np.ndarray,
                   path: str | os.PathLike, title: str = "") -> Path:
    """One PNG (written atomically): per entry its image in grey, the saliency map over it (scaled to the image's
    own maximum) and the outlines of S (cyan) and Y (lime) where known, one row per (y, s) subgroup (``groups``,
    one per entry)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows: dict[tuple[int, int], list[int]] = {}
    for i, group in enumerate(groups):
        rows.setdefault(tuple(group), []).append(i)
    cols = max((len(r) for r in rows.values()), default=1)
    fig, axes = plt.subplots(len(rows) or 1, cols, figsize=(1.5 * cols + 0.4, 1.5 * max(len(rows), 1) + 0.4),
                             squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for r, ((y, s), members) in enumerate(sorted(rows.items())):
        axes[r, 0].set_title(f"y={y}, s={s}", fontsize=7, loc="left")
        for c, i in enumerate(members):
            image = load_array(entries[i], "image")
            ax = axes[r, c]
            ax.imshow(image[0], cmap="gray")
            peak = float(maps[i].max())
            ax.imshow(maps[i] / peak if peak > 0 else maps[i], cmap="inferno", alpha=0.55, vmin=0.0, vmax=1.0)
            for key, color in (("spurious_mask", "cyan"), ("label", "lime")):
                if _has(entries[i], key):
                    ax.contour(spatial_mask(load_array(entries[i], key), image.shape), levels=[0.5], colors=color,
                               linewidths=0.8)
    if title:
        fig.suptitle(textwrap.fill(title, width=max(28, 24 * cols)), fontsize=7)
    fig.tight_layout()
    return save_figure_atomic(fig, path, dpi=80)


def audit_saliency(network: nn.Module, entries: Sequence[Mapping[str, Any]], method: str, score: str = "mean",
                   per_group: int = 2, max_share_images: int = 100, layer: str | None = None,
                   occlusion_size: int = 4, batch_size: int = 64, overlay_path: str | os.PathLike | None = None,
                   title: str = "") -> dict[str, Any]:
    """Saliency of one trained network on a split: the mean shares (:func:`mean_shares`) over the images of
    :func:`pick_images` that carry both masks, ``n_images`` (how many of them had positive mass), and, with
    ``overlay_path``, the overlay PNG of ``per_group`` images per (y, s) subgroup (:func:`write_overlays`).

    Raises:
        ValueError: naming ``per_group``, ``max_share_images`` or ``batch_size`` when < 0 (< 1 for the batch).
    """
    for name, value, least in (("per_group", per_group, 0), ("max_share_images", max_share_images, 0),
                               ("batch_size", batch_size, 1)):
        if value < least:
            raise ValueError(f"{name} must be >= {least}, got {value}")
    overlay, share_ids = pick_images(entries, per_group, max_share_images)
    wanted = list(dict.fromkeys([i for i, _ in overlay] + share_ids))
    maps: dict[int, np.ndarray] = {}
    for start in range(0, len(wanted), batch_size):
        chunk = wanted[start : start + batch_size]
        batch = np.stack([load_array(entries[i], "image") for i in chunk])
        maps.update(zip(chunk, saliency_maps(network, batch, method, score, layer, occlusion_size), strict=True))
    result: dict[str, Any] = mean_shares(np.zeros((0, 3)))
    result["n_images"] = 0
    if share_ids:
        shape = maps[share_ids[0]].shape
        masks = {key: np.stack([spatial_mask(load_array(entries[i], key), shape, key) for i in share_ids])
                 for key in ("spurious_mask", "label")}
        shares = region_shares(np.stack([maps[i] for i in share_ids]), masks["spurious_mask"], masks["label"])
        result = {**mean_shares(shares), "n_images": int((~np.isnan(shares).any(axis=1)).sum())}
    if overlay_path is not None and overlay:
        write_overlays([entries[i] for i, _ in overlay], [g for _, g in overlay],
                       np.stack([maps[i] for i, _ in overlay]), overlay_path, title)
    return result


def summarize_shares(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per (level, model), in first-seen order: ``n_seeds`` (rows with shares) and the mean and sample standard
    deviation (``ddof=1``; 0 for one seed) over them of each share; ``None`` where no row has shares."""
    keys = list(dict.fromkeys((row["level"], row["model"]) for row in rows))
    summary = []
    for level, model in keys:
        members = [r for r in rows if (r["level"], r["model"]) == (level, model) and r["share_spurious"] is not None]
        entry: dict[str, Any] = {"level": level, "model": model, "n_seeds": len(members)}
        for region in REGIONS:
            values = np.array([r[f"share_{region}"] for r in members], dtype=np.float64)
            entry[f"share_{region}_mean"] = float(values.mean()) if len(values) else None
            entry[f"share_{region}_std"] = float(values.std(ddof=1)) if len(values) > 1 else \
                (0.0 if len(values) else None)
        summary.append(entry)
    return summary
