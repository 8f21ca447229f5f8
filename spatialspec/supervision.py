"""The supervision Ytilde of each spatial-specificity level, computed from the abnormality mask Y (Sec. 3.1, Fig.
1-2), with numpy and scipy only: binary, ``patch:K``, ``dilate:R`` (the paper's r), ``bbox`` / ``bbox:all`` and
``seg``. The MONAI transforms that apply them in the bundles are :mod:`spatialspec.transforms.specificity`; the
measures of :mod:`spatialspec.theory` call them directly, so that ``spatialspec measures`` needs no torch.

Every function works on the last two (spatial) dimensions, so a ``1 x H x W`` channel-first image, a ``B x 1 x H x
W`` batch and a plain ``H x W`` array are all accepted; a torch tensor is read as an array. They return boolean
arrays of the mask's shape.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from spatialspec.levels import SpecificityLevel, parse_level

__all__ = ["binary_supervision", "patch_supervision", "dilate_supervision", "bbox_supervision",
           "specificity_supervision"]


def _as_bool(mask: Any) -> np.ndarray:
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported; this module does not import it
    if torch is not None and isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    arr = np.asarray(mask)
    if arr.ndim < 2:
        raise ValueError(f"mask must have at least 2 (spatial) dimensions, got shape {arr.shape}")
    return arr > 0


def binary_supervision(mask: np.ndarray) -> np.ndarray:
    """Binary level (r = 1): every pixel of an image equals its image label y = any(Y)."""
    mask = _as_bool(mask)
    positive = mask.any(axis=(-2, -1), keepdims=True)
    return np.broadcast_to(positive, mask.shape).copy()


def patch_supervision(mask: np.ndarray, grid: int) -> np.ndarray:
    """Patch level: split the image into a ``grid x grid`` set of cells; a cell is positive if it holds any Y pixel.

    Row i belongs to cell ``floor(i * grid / H)`` (columns likewise), so sizes that ``grid`` does not divide are
    supported: cells then differ by at most one pixel.

    Raises:
        ValueError: if ``grid`` is < 1 or larger than a spatial dimension.
    """
    mask = _as_bool(mask)
    h, w = mask.shape[-2:]
    if not isinstance(grid, (int, np.integer)) or grid < 1:
        raise ValueError(f"grid must be an integer >= 1, got {grid!r}")
    if grid > min(h, w):
        raise ValueError(f"grid={grid} is larger than the image ({h} x {w}): every cell must hold a pixel")
    row_starts = -(-np.arange(grid) * h // grid)  # ceil(c * h / grid): first row whose cell index is c
    col_starts = -(-np.arange(grid) * w // grid)
    cells = np.logical_or.reduceat(mask, row_starts, axis=-2)
    cells = np.logical_or.reduceat(cells, col_starts, axis=-1)
    row_cell = (np.arange(h) * grid) // h
    col_cell = (np.arange(w) * grid) // w
    return cells[..., row_cell, :][..., :, col_cell]


def dilate_supervision(mask: np.ndarray, resolution: float) -> np.ndarray:
    """Dilate level, the paper's r (Sec. 3.1): Ytilde_ij = 1 iff some Y_kl = 1 has |i-k| < floor(H/r) and
    |j-l| < floor(W/r).

    Computed with an integral image, so the cost does not depend on the window size (r = 1 on a 1024 x 1024
    image is as cheap as r = n).

    Raises:
        ValueError: if ``resolution`` is not > 0 or exceeds a spatial dimension (an empty window).
    """
    mask = _as_bool(mask)
    h, w = mask.shape[-2:]
    if not resolution > 0:
        raise ValueError(f"resolution must be > 0, got {resolution!r}")
    half_h, half_w = int(h // resolution) - 1, int(w // resolution) - 1
    if half_h < 0 or half_w < 0:
        raise ValueError(f"resolution={resolution} exceeds the image size ({h} x {w}); the largest is {min(h, w)}")
    return _box_dilate(mask, half_h, half_w)


def _box_dilate(mask: np.ndarray, half_h: int, half_w: int) -> np.ndarray:
    """Binary dilation by a (2*half_h+1) x (2*half_w+1) box, through a summed-area table."""
    h, w = mask.shape[-2:]
    lead = [(0, 0)] * (mask.ndim - 2)
    padded = np.pad(mask.astype(np.int64), lead + [(half_h + 1, half_h), (half_w + 1, half_w)])
    table = padded.cumsum(axis=-2).cumsum(axis=-1)
    kh, kw = 2 * half_h + 1, 2 * half_w + 1
    window = (
        table[..., kh : kh + h, kw : kw + w]
        - table[..., :h, kw : kw + w]
        - table[..., kh : kh + h, :w]
        + table[..., :h, :w]
    )
    return window > 0


def bbox_supervision(mask: np.ndarray, mode: str = "component", connectivity: int = 2) -> np.ndarray:
    """Bounding-box level: one filled box per connected component of Y (``mode="component"``) or one box around
    all Y pixels (``mode="all"``).

    Args:
        mask: the abnormality mask, ``(..., H, W)``.
        mode: ``"component"`` or ``"all"``.
        connectivity: 1 for 4-connected, 2 for 8-connected components (the default: diagonal neighbours belong
            to the same abnormality).
    """
    if mode not in ("component", "all"):
        raise ValueError(f"mode must be 'component' or 'all', got {mode!r}")
    if connectivity not in (1, 2):
        raise ValueError(f"connectivity must be 1 or 2, got {connectivity!r}")
    from scipy import ndimage  # scipy (0.4 s) only for boxes: the command line imports this module

    mask = _as_bool(mask)
    out = np.zeros_like(mask)
    structure = ndimage.generate_binary_structure(2, connectivity)
    for idx in np.ndindex(*mask.shape[:-2]):
        plane = mask[idx]
        if not plane.any():
            continue
        if mode == "all":
            rows, cols = np.nonzero(plane)
            out[idx][rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
            continue
        labels, _ = ndimage.label(plane, structure=structure)
        for box in ndimage.find_objects(labels):
            out[idx][box] = True
    return out


def specificity_supervision(mask: Any, level: str | SpecificityLevel) -> np.ndarray:
    """The supervision of ``level`` for the mask Y, as a boolean array of the same shape."""
    level = parse_level(level)
    if level.kind == "binary":
        return binary_supervision(mask)
    if level.kind == "patch":
        return patch_supervision(mask, int(level.param))
    if level.kind == "dilate":
        return dilate_supervision(mask, float(level.param))
    if level.kind == "bbox":
        return bbox_supervision(mask, mode="all" if level.param == "all" else "component")
    return _as_bool(mask).copy()
