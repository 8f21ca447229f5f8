"""Specificity transforms: turn an abnormality mask Y into the supervision Ytilde of a level (Sec. 3.1, Fig. 1-2).

Every transform works on the last two (spatial) dimensions, so a ``1 x H x W`` channel-first image, a ``B x 1 x H
x W`` batch and a plain ``H x W`` array are all accepted. Numpy arrays and torch tensors are returned as the type
(and device) they came in. The supervision itself is computed by the numpy functions of
:mod:`spatialspec.supervision` (re-exported here), which need no torch.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform
from monai.utils import convert_to_dst_type

from spatialspec.levels import SpecificityLevel, parse_level
from spatialspec.supervision import (
    bbox_supervision,
    binary_supervision,
    dilate_supervision,
    patch_supervision,
    specificity_supervision,
)

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
