"""Empirical spatial-specificity measures over the pixels of a data set (Saab et al., Sec. 3.3, Definitions 1 and 3).

For a level (any level name of :mod:`spatialspec.levels`: ``binary``, ``patch:K``, ``dilate:R``, ``bbox``,
``bbox:all``, ``seg``) the supervision Ytilde of every image is built from its abnormal mask Y, and the pixels with
Ytilde_ij = 1 are pooled over all images:

* the variance measure (Definition 1) is the (population, ddof = 0) variance of X_ij over the pooled pixels; every
  channel value of a positive pixel counts (a grayscale image has one);
* the MI measure (Definition 3) is the plug-in mutual information of the joint counts of (S_ij, Y_ij) over the
  pooled pixels, in nats (natural logarithm, as :mod:`spatialspec.theory.closed_form`) unless ``base`` is given.

``dilate:R`` levels honour ``rounding``: ``"floor"`` builds Ytilde exactly as the transforms do
(:func:`spatialspec.transforms.dilate_supervision`, h = floor(n / r), Sec. 3.1); ``"ceil"`` uses h = ceil(n / r)
(Appendix B). The two agree whenever n / r is an integer. Images are stacked per shape, so the work is numpy on
whole arrays, not per image.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from spatialspec.data.datalist import load_split
from spatialspec.data.synthetic import SyntheticParams, generate_split
from spatialspec.levels import SpecificityLevel, parse_level
from spatialspec.supervision import dilate_supervision, specificity_supervision

from .closed_form import _check_rounding, specificity_distance

__all__ = [
    "MeasureArrays",
    "dilate_mask",
    "level_supervision",
    "variance_measure",
    "joint_counts",
    "mi_from_counts",
    "mi_measure",
    "empirical_measures",
    "synthetic_arrays",
    "datalist_arrays",
]


class MeasureArrays(NamedTuple):
    """The arrays the empirical measures read.

    Attributes:
        images: ``N x C x H x W`` array, or a sequence of ``C x H x W`` arrays (shapes may differ between images).
        masks: the abnormal masks Y, ``N x H x W`` boolean (or a sequence of ``H x W`` arrays).
        spurious: the spurious masks S like ``masks``, or ``None`` when the data set has none (no MI measure).
    """

    images: np.ndarray | Sequence[np.ndarray]
    masks: np.ndarray | Sequence[np.ndarray]
    spurious: np.ndarray | Sequence[np.ndarray] | None


def dilate_mask(mask: np.ndarray, r: float, rounding: str = "floor") -> np.ndarray:
    """Ytilde at spatial specificity ``r`` (Sec. 3.1): Ytilde_ij = 1 iff some Y_kl = 1 has |i - k| < h_H and
    |j - l| < h_W, on the last two axes.

    ``rounding="floor"`` is the transforms' ``dilate:R`` label (h = floor(H / r), delegated to
    :func:`spatialspec.transforms.dilate_supervision`); ``"ceil"`` takes h = ceil(H / r), the distance Appendix B
    writes in gamma(r). The two coincide when H / r and W / r are integers; for any other r ``ceil`` is one pixel
    wider per side (unless both already cover the image).

    Raises:
        ValueError: for an unknown ``rounding`` or an invalid ``r`` (see
            :func:`spatialspec.theory.closed_form.specificity_distance`).
    """
    _check_rounding(rounding)
    mask = np.asarray(mask)
    if mask.ndim < 2:
        raise ValueError(f"mask must have at least 2 (spatial) dimensions, got shape {mask.shape}")
    if rounding == "floor":
        return dilate_supervision(mask, r)
    from scipy import ndimage  # scipy when computed: the command line's parser imports this package

    h, w = mask.shape[-2:]
    half_h, half_w = specificity_distance(h, r, "ceil") - 1, specificity_distance(w, r, "ceil") - 1
    out = (mask > 0).view(np.uint8) if mask.dtype == bool else (mask > 0).astype(np.uint8)
    # a box dilation is separable: a running maximum along rows, then along columns (pixels outside count as 0)
    out = ndimage.maximum_filter1d(out, 2 * half_h + 1, axis=-2, mode="constant", cval=0)
    out = ndimage.maximum_filter1d(out, 2 * half_w + 1, axis=-1, mode="constant", cval=0)
    return out.astype(bool)


def level_supervision(masks: np.ndarray, level: str | SpecificityLevel, rounding: str = "floor") -> np.ndarray:
    """The supervision Ytilde of ``level`` for the masks Y (boolean, same shape): :func:`dilate_mask` with
    ``rounding`` for ``dilate:R``, :func:`spatialspec.transforms.specificity_supervision` for every other level."""
    level = parse_level(level)
    _check_rounding(rounding)
    if level.kind == "dilate":
        return dilate_mask(masks, float(level.param), rounding)
    return specificity_supervision(masks, level)


def _positive_values(images: np.ndarray, supervision: np.ndarray) -> np.ndarray:
    """The channel values of the pixels with Ytilde = 1; images ``N x C x H x W``, supervision ``N x H x W``."""
    return images[np.broadcast_to(supervision[:, None], images.shape)]


def variance_measure(images: np.ndarray, supervision: np.ndarray) -> float:
    """Definition 1, Var[X_ij | Ytilde_ij = 1]: the variance (ddof = 0) of the image values where ``supervision``
    is true, pooled over images (``images`` ``N x C x H x W`` or ``N x H x W``, ``supervision`` ``N x H x W``).
    NaN when no pixel is positive.

    Raises:
        ValueError: if the spatial shapes differ.
    """
    images, supervision = _as_stack(images), np.asarray(supervision, dtype=bool)
    if images.shape[:1] + images.shape[2:] != supervision.shape:
        raise ValueError(f"images {images.shape} and supervision {supervision.shape} do not match")
    count, _, m2 = _moments(_positive_values(images, supervision))
    return m2 / count if count else math.nan


def joint_counts(spurious: np.ndarray, abnormal: np.ndarray, supervision: np.ndarray) -> np.ndarray:
    """The 2 x 2 counts ``[s, y]`` of (S_ij, Y_ij) over the pixels where ``supervision`` is true (same shapes)."""
    spurious, abnormal, supervision = (np.asarray(x) for x in (spurious, abnormal, supervision))
    if not spurious.shape == abnormal.shape == supervision.shape:
        raise ValueError(f"spurious {spurious.shape}, abnormal {abnormal.shape} and supervision {supervision.shape} "
                         "masks must have the same shape")
    keep = supervision.astype(bool)
    codes = 2 * (spurious[keep] > 0).astype(np.int64) + (abnormal[keep] > 0)
    return np.bincount(codes, minlength=4).reshape(2, 2)


def mi_from_counts(counts: np.ndarray, base: float | None = None) -> float:
    """Plug-in mutual information of a 2-D contingency table (0 log 0 = 0); nats unless ``base`` is given, NaN for
    an empty table."""
    from scipy.special import xlogy  # scipy when computed: the command line's parser imports this package

    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    if total == 0:
        return math.nan
    p = counts / total
    outer = p.sum(axis=1, keepdims=True) * p.sum(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = float(np.sum(xlogy(p, p) - xlogy(p, np.where(p > 0, outer, 1.0))))
    value = max(value, 0.0)  # rounding can leave -1e-17 for independent variables
    return value / math.log(base) if base is not None else value


def mi_measure(spurious: np.ndarray, abnormal: np.ndarray, supervision: np.ndarray, base: float | None = None
               ) -> float:
    """Definition 3, I(S_ij; Y_ij | Ytilde_ij = 1): the plug-in MI of the pixels where ``supervision`` is true."""
    return mi_from_counts(joint_counts(spurious, abnormal, supervision), base)


def _moments(values: np.ndarray) -> tuple[int, float, float]:
    """(count, mean, sum of squared deviations) of ``values``, in float64."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return 0, 0.0, 0.0
    mean = float(values.mean())
    return int(values.size), mean, float(np.square(values - mean).sum())


def _merge(a: tuple[int, float, float], b: tuple[int, float, float]) -> tuple[int, float, float]:
    """Chan et al.'s pairwise update of (count, mean, M2)."""
    (na, ma, sa), (nb, mb, sb) = a, b
    if nb == 0:
        return a
    if na == 0:
        return b
    n = na + nb
    delta = mb - ma
    return n, ma + delta * nb / n, sa + sb + delta * delta * na * nb / n


def _as_stack(images: np.ndarray) -> np.ndarray:
    """``N x H x W`` or ``N x C x H x W`` as ``N x C x H x W``."""
    images = np.asarray(images)
    if images.ndim == 3:
        return images[:, None]
    if images.ndim != 4:
        raise ValueError(f"images must be N x H x W or N x C x H x W, got shape {images.shape}")
    return images


def _as_plane(mask: np.ndarray, what: str, index: int) -> np.ndarray:
    """One mask as ``H x W`` boolean: a leading channel axis is reduced by 'any'."""
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask.any(axis=0) if mask.dtype == bool else (mask > 0).any(axis=0)
    if mask.ndim != 2:
        raise ValueError(f"{what} {index}: a mask must be H x W or C x H x W, got shape {mask.shape}")
    return mask > 0


def _groups(arrays: MeasureArrays) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
    """Stack images, masks and spurious masks per image shape: ``[(N x C x H x W, N x H x W, N x H x W), ...]``."""
    images, masks, spurious = arrays
    if isinstance(images, np.ndarray) and isinstance(masks, np.ndarray):
        stack = _as_stack(images)
        masks = np.asarray(masks)
        masks = masks.reshape(masks.shape[0], *masks.shape[-2:]) if masks.ndim == 4 and masks.shape[1] == 1 else masks
        spur = None
        if spurious is not None:
            spur = np.asarray(spurious)
            spur = spur.reshape(spur.shape[0], *spur.shape[-2:]) if spur.ndim == 4 and spur.shape[1] == 1 else spur
        for name, arr in (("masks", masks), ("spurious masks", spur)):
            if arr is not None and arr.shape != stack.shape[:1] + stack.shape[2:]:
                raise ValueError(f"{name} of shape {arr.shape} do not match images of shape {stack.shape}")
        return [(stack, masks > 0, None if spur is None else spur > 0)] if len(stack) else []
    if len(images) != len(masks) or (spurious is not None and len(spurious) != len(images)):
        raise ValueError(f"got {len(images)} images, {len(masks)} masks and "
                         f"{'no' if spurious is None else len(spurious)} spurious masks: one each per image")
    by_shape: dict[tuple[int, ...], list[int]] = {}
    planes, spur_planes, chans = [], [], []
    for i, image in enumerate(images):
        image = np.asarray(image)
        image = image[None] if image.ndim == 2 else image
        if image.ndim != 3:
            raise ValueError(f"image {i}: must be H x W or C x H x W, got shape {image.shape}")
        mask = _as_plane(masks[i], "mask", i)
        if mask.shape != image.shape[-2:]:
            raise ValueError(f"image {i}: mask shape {mask.shape} differs from the image's {image.shape[-2:]}")
        if spurious is not None:
            spur_plane = _as_plane(spurious[i], "spurious mask", i)
            if spur_plane.shape != mask.shape:
                raise ValueError(f"image {i}: spurious mask shape {spur_plane.shape} differs from the image's "
                                 f"{mask.shape}")
            spur_planes.append(spur_plane)
        chans.append(image)
        planes.append(mask)
        by_shape.setdefault(image.shape, []).append(i)
    return [(np.stack([chans[i] for i in idx]), np.stack([planes[i] for i in idx]),
             None if spurious is None else np.stack([spur_planes[i] for i in idx])) for idx in by_shape.values()]


def _unique_masks(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct masks of an ``N x H x W`` stack and, per image, the index of its mask among them."""
    packed = np.packbits(masks.reshape(len(masks), -1), axis=1)
    rows = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    return masks[first], inverse.ravel()


def empirical_measures(arrays: MeasureArrays, levels: Sequence[str | SpecificityLevel], rounding: str = "floor",
                       base: float | None = None) -> list[dict[str, Any]]:
    """The variance and MI measures (Definitions 1 and 3) of a data set at each level, pixels pooled over images.

    Args:
        arrays: images, abnormal masks Y and (optionally) spurious masks S, see :class:`MeasureArrays`.
        levels: level names (any of :mod:`spatialspec.levels`).
        rounding: ``"floor"`` (the transforms' ``dilate:R``) or ``"ceil"`` (Appendix B); only ``dilate`` levels
            depend on it.
        base: logarithm base of the MI (natural by default).

    Returns:
        one dict per level: ``level`` (canonical name), ``var_empirical``, ``mi_empirical`` (``None`` without
        spurious masks; NaN when no pixel is positive, as ``var_empirical``) and ``pixels`` (the number of pixel
        positions with Ytilde = 1).
    """
    _check_rounding(rounding)
    arrays = MeasureArrays(*arrays)
    parsed = [parse_level(level) for level in levels]
    groups = [(images, masks, spurious, *_unique_masks(masks)) for images, masks, spurious in _groups(arrays)]
    records = []
    for level in parsed:
        moments, counts, pixels = (0, 0.0, 0.0), np.zeros((2, 2), np.int64), 0
        for images, masks, spurious, unique, inverse in groups:
            # the supervision is a function of the mask alone: build it once per distinct mask
            sup = level_supervision(unique, level, rounding)[inverse]
            pixels += int(sup.sum())
            moments = _merge(moments, _moments(_positive_values(images, sup)))
            if spurious is not None:
                counts += joint_counts(spurious, masks, sup)
        count, _, m2 = moments
        records.append({
            "level": level.name,
            "var_empirical": m2 / count if count else math.nan,
            "mi_empirical": None if arrays.spurious is None else mi_from_counts(counts, base),
            "pixels": pixels,
        })
    return records


def synthetic_arrays(params: SyntheticParams | None = None, samples: int | None = None, seed: int = 0
                     ) -> MeasureArrays:
    """``samples`` training images of the synthetic model (Sec. 3.2.2; :func:`generate_split` with ``m = samples``,
    split ``training``, ``seed``) stacked as ``N x 1 x n x n`` images and ``N x n x n`` boolean masks.

    Raises:
        ValueError: if ``samples`` < 1.
    """
    params = params or SyntheticParams()
    if samples is not None:
        if isinstance(samples, bool) or not isinstance(samples, (int, np.integer)) or samples < 1:
            raise ValueError(f"samples must be an integer >= 1, got {samples!r}")
        params = params.replace(m=int(samples))
    data = generate_split(params, "training", seed)
    return MeasureArrays(images=np.stack([d["image"] for d in data]),
                         masks=np.stack([d["label"][0] for d in data]) > 0,
                         spurious=np.stack([d["spurious_mask"][0] for d in data]) > 0)


def datalist_arrays(datalist: str | os.PathLike, split: str = "training") -> MeasureArrays:
    """Load the images, abnormal masks (``label``) and spurious masks (``spurious_mask``) of one split of a
    decathlon-style datalist (:func:`spatialspec.data.load_split`) with MONAI's ``LoadImage``, channel first.

    ``spurious`` is ``None`` unless every entry names a ``spurious_mask``. Multi-channel masks count a pixel as
    positive if any channel is.

    Raises:
        FileNotFoundError: if the datalist or a file it names does not exist.
        ValueError: naming the entry for a missing field or mismatched shapes.
    """
    from monai.transforms import LoadImage

    entries = load_split(split, datalist, require_mask=True)
    if not entries:
        raise ValueError(f"datalist {datalist}: split '{split}' is empty")
    loader = LoadImage(image_only=True, ensure_channel_first=True)

    def load(entry: dict[str, Any], key: str, i: int) -> np.ndarray:
        path = entry[key]
        if not os.path.isfile(path):
            raise FileNotFoundError(f"datalist {datalist}, split '{split}', entry {i}: {key} file not found: {path}")
        return np.asarray(loader(path))

    has_spurious = all("spurious_mask" in entry for entry in entries)
    images, masks, spurious = [], [], []
    for i, entry in enumerate(entries):
        images.append(load(entry, "image", i))
        masks.append(_as_plane(load(entry, "label", i), f"datalist {datalist}, split '{split}', entry", i))
        if has_spurious:
            spurious.append(_as_plane(load(entry, "spurious_mask", i), f"datalist {datalist}, split '{split}', entry",
                                      i))
    return MeasureArrays(images=images, masks=masks, spurious=spurious if has_spurious else None)
