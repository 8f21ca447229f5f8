"""Specificity transforms: turn an abnormality mask Y into the supervision Ytilde of a level (Sec. 3.1, Fig. 1-2).

Every transform works on the last two (spatial) dimensions, so a ``1 x H x W`` channel-first image, a ``B x 1 x H
x W`` batch and a plain ``H x W`` array are all accepted. Numpy arrays and torch tensors are returned as the type
(and device) they came in.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import convert_data_type, convert_to_dst_type
from scipy import ndimage

from spatialspec.levels import SpecificityLevel, parse_level

__all__ = [
    "binary_supervision",
    "patch_supervision",
    "dilate_supervision",
    "bbox_supervision",
    "specificity_supervision",
    "MaskToPatchGrid",
    "DilateMask",
    "MaskToBoundingBox",
    "SpecificityLabel",
    "MaskToPatchGridd",
    "DilateMaskd",
    "MaskToBoundingBoxd",
    "SpecificityLabeld",
    "MaskToPatchGridD",
    "MaskToPatchGridDict",
    "DilateMaskD",
    "DilateMaskDict",
    "MaskToBoundingBoxD",
    "MaskToBoundingBoxDict",
    "SpecificityLabelD",
    "SpecificityLabelDict",
]


def _as_bool(mask: NdarrayOrTensor) -> np.ndarray:
    arr = convert_data_type(mask, np.ndarray)[0]
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


def specificity_supervision(mask: NdarrayOrTensor, level: str | SpecificityLevel) -> np.ndarray:
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


class _SupervisionTransform(Transform):
    """Base of the array transforms: computes a boolean supervision and returns it as the input's type."""

    def __init__(self, dtype: np.dtype | torch.dtype | None = np.float32) -> None:
        self.dtype = dtype

    def _supervise(self, mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, mask: NdarrayOrTensor) -> NdarrayOrTensor:
        out = self._supervise(mask)
        return convert_to_dst_type(out, mask, dtype=self.dtype)[0]


class MaskToPatchGrid(_SupervisionTransform):
    """Array transform for the ``patch:K`` level (Fig. 1: patch-based classification).

    Args:
        grid: K, the number of cells along each axis.
        dtype: output dtype (default float32, as a segmentation label).
    """

    def __init__(self, grid: int, dtype: np.dtype | torch.dtype | None = np.float32) -> None:
        super().__init__(dtype)
        self.grid = grid

    def _supervise(self, mask: np.ndarray) -> np.ndarray:
        return patch_supervision(mask, self.grid)


class DilateMask(_SupervisionTransform):
    """Array transform for the ``dilate:R`` level, the paper's spatial specificity r (Sec. 3.1, Fig. 2).

    Args:
        resolution: r > 0; pixels within floor(n/r) - 1 of an abnormal pixel in both axes become positive.
        dtype: output dtype.
    """

    def __init__(self, resolution: float, dtype: np.dtype | torch.dtype | None = np.float32) -> None:
        super().__init__(dtype)
        self.resolution = resolution

    def _supervise(self, mask: np.ndarray) -> np.ndarray:
        return dilate_supervision(mask, self.resolution)


class MaskToBoundingBox(_SupervisionTransform):
    """Array transform for the ``bbox`` level (Fig. 1: bounding-box detection as a box mask).

    Args:
        mode: ``"component"`` (one box per connected component) or ``"all"`` (one box around everything).
        connectivity: 1 (4-connected) or 2 (8-connected).
        dtype: output dtype.
    """

    def __init__(
        self, mode: str = "component", connectivity: int = 2, dtype: np.dtype | torch.dtype | None = np.float32
    ) -> None:
        super().__init__(dtype)
        self.mode = mode
        self.connectivity = connectivity

    def _supervise(self, mask: np.ndarray) -> np.ndarray:
        return bbox_supervision(mask, self.mode, self.connectivity)


class SpecificityLabel(_SupervisionTransform):
    """Array transform: the supervision of any level name (``binary``, ``patch:K``, ``dilate:R``, ``bbox``,
    ``bbox:all``, ``seg``), Sec. 3.1.

    Example:
        >>> import numpy as np
        >>> mask = np.zeros((1, 8, 8)); mask[0, 2:4, 2:4] = 1
        >>> SpecificityLabel("patch:2")(mask)[0, :, 0]
        array([1., 1., 1., 1., 0., 0., 0., 0.], dtype=float32)
    """

    def __init__(self, level: str | SpecificityLevel, dtype: np.dtype | torch.dtype | None = np.float32) -> None:
        super().__init__(dtype)
        self.level = parse_level(level)

    def _supervise(self, mask: np.ndarray) -> np.ndarray:
        return specificity_supervision(mask, self.level)


class _SupervisionTransformd(MapTransform):
    """Base of the dictionary transforms: applies an array transform to ``keys``, writing ``output_keys``."""

    def __init__(
        self,
        keys: KeysCollection,
        transform: _SupervisionTransform,
        output_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.transform = transform
        self.output_keys = list(self.keys) if output_keys is None else list(
            [output_keys] if isinstance(output_keys, str) else output_keys
        )
        if len(self.output_keys) != len(self.keys):
            raise ValueError(
                f"output_keys must name one output per key: keys={list(self.keys)}, output_keys={self.output_keys}"
            )

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key, out_key in zip(self.key_iterator(d), self.output_keys):
            d[out_key] = self.transform(d[key])
        return d


class MaskToPatchGridd(_SupervisionTransformd):
    """Dictionary form of :class:`MaskToPatchGrid`; ``output_keys`` default to overwriting ``keys``."""

    def __init__(self, keys: KeysCollection, grid: int, output_keys: KeysCollection | None = None,
                 dtype: np.dtype | torch.dtype | None = np.float32, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, MaskToPatchGrid(grid, dtype), output_keys, allow_missing_keys)


class DilateMaskd(_SupervisionTransformd):
    """Dictionary form of :class:`DilateMask`."""

    def __init__(self, keys: KeysCollection, resolution: float, output_keys: KeysCollection | None = None,
                 dtype: np.dtype | torch.dtype | None = np.float32, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, DilateMask(resolution, dtype), output_keys, allow_missing_keys)


class MaskToBoundingBoxd(_SupervisionTransformd):
    """Dictionary form of :class:`MaskToBoundingBox`."""

    def __init__(self, keys: KeysCollection, mode: str = "component", connectivity: int = 2,
                 output_keys: KeysCollection | None = None, dtype: np.dtype | torch.dtype | None = np.float32,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, MaskToBoundingBox(mode, connectivity, dtype), output_keys, allow_missing_keys)


class SpecificityLabeld(_SupervisionTransformd):
    """Dictionary form of :class:`SpecificityLabel`: the level's supervision of the mask under ``keys``.

    Example (the bundles' wiring): ``SpecificityLabeld(keys="mask", level="bbox", output_keys="label")``.
    """

    def __init__(self, keys: KeysCollection, level: str | SpecificityLevel,
                 output_keys: KeysCollection | None = None, dtype: np.dtype | torch.dtype | None = np.float32,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, SpecificityLabel(level, dtype), output_keys, allow_missing_keys)


MaskToPatchGridD = MaskToPatchGridDict = MaskToPatchGridd
DilateMaskD = DilateMaskDict = DilateMaskd
MaskToBoundingBoxD = MaskToBoundingBoxDict = MaskToBoundingBoxd
SpecificityLabelD = SpecificityLabelDict = SpecificityLabeld
