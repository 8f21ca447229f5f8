"""Dictionary transform of Seg-SSL (Saab et al. 2022, Sec. 4.2.1): the unlabelled training images keep no location
label, so no loss can read one by mistake."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform

__all__ = ["HideUnlabelledd"]


class HideUnlabelledd(MapTransform):
    """Replace ``keys`` (the location labels) by zeros of the same shape and type in items whose ``labelled_key`` is
    0 (see :func:`spatialspec.data.subsample.flag_location_labels`); labelled items pass unchanged.

    Raises:
        KeyError: naming ``labelled_key`` when an item lacks it.
    """

    def __init__(self, keys: KeysCollection, labelled_key: str = "labelled", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.labelled_key = labelled_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        if self.labelled_key not in d:
            raise KeyError(f"HideUnlabelledd: the item has no {self.labelled_key!r} flag")
        if int(d[self.labelled_key]):
            return d
        for key in self.key_iterator(d):
            d[key] = torch.zeros_like(d[key]) if isinstance(d[key], torch.Tensor) else d[key] * 0
        return d
