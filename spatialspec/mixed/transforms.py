"""The target of a mixed-supervision run (issue 15, Sec. 3): each image's location label at its own level."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

from spatialspec.levels import parse_level
from spatialspec.transforms.specificity import SpecificityLabel

from .data import BINARY

__all__ = ["MixedSpecificityLabeld"]


class MixedSpecificityLabeld(MapTransform):
    """The supervision of each item's own level (Sec. 3.1): :class:`spatialspec.transforms.SpecificityLabel` of
    ``d[level_key]`` (written by :func:`spatialspec.mixed.flag_mixed_labels`), or of ``level`` when the item has no
    such field (validation). An item whose level is :data:`spatialspec.mixed.BINARY` keeps no location label: all
    zeros of the mask's shape, so no loss can read one by mistake.

    Args:
        keys: the abnormal masks.
        level: the level of items without ``level_key``.
        level_key: the item's level field.
        dtype: the output dtype.

    Raises:
        ValueError: naming ``level`` when invalid, or the item's level when unknown.

    Example:
        >>> mask = np.zeros((1, 8, 8), dtype=np.float32); mask[0, 2:4, 2:5] = 1
        >>> t = MixedSpecificityLabeld("label")
        >>> [float(t({"label": mask, "location_level": lv})["label"].sum()) for lv in ("seg", "binary")]
        [6.0, 0.0]
    """

    def __init__(self, keys: KeysCollection, level: str = "seg", level_key: str = "location_level",
                 dtype: np.dtype | torch.dtype | None = np.float32, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.level, self.level_key, self.dtype = parse_level(level).name, level_key, dtype
        self._transforms: dict[str, SpecificityLabel] = {}

    def _transform(self, name: str) -> SpecificityLabel:
        if name not in self._transforms:
            try:
                self._transforms[name] = SpecificityLabel(name, self.dtype)
            except ValueError as e:
                raise ValueError(f"MixedSpecificityLabeld: {self.level_key} {name!r}: {e}") from None
        return self._transforms[name]

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        name = str(d.get(self.level_key, self.level))
        for key in self.key_iterator(d):
            out = self._transform(self.level if name == BINARY else name)(d[key])
            d[key] = out * 0 if name == BINARY else out
        return d
