"""Class-indexed supervision: a mask's foreground labelled by the image's class (Saab et al. 2022, Sec. 5, App. A.1:
ISIC is segmented into background, benign lesion and melanoma lesion, as in the authors' code).

The level's supervision of the lesion mask (:class:`~spatialspec.transforms.SpecificityLabeld`) is multiplied by
``1 + y``: background stays 0, the lesion of a benign image (``y = 0``) becomes 1, that of a melanoma (``y = 1``) 2,
and the network's last channel scores the image.
"""

from __future__ import annotations

import numbers
from collections.abc import Hashable, Mapping
from typing import Any

from monai.config import KeysCollection, NdarrayOrTensor
from monai.transforms import MapTransform, Transform

__all__ = ["LabelByClass", "LabelByClassd", "LabelByClassD", "LabelByClassDict"]


def _class_index(y: Any) -> int:
    value = y.item() if hasattr(y, "item") else y
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value != int(value) or value < 0:
        raise ValueError(f"LabelByClass: the class must be a non-negative integer, got {y!r}")
    return int(value)


class LabelByClass(Transform):
    """Label a mask's foreground by the image's class: ``mask * (1 + y)``.

    The mask keeps its type, device and dtype (a ``uint8`` mask stays ``uint8``).

    Example::

        >>> LabelByClass()(np.array([[0, 1]], dtype=np.uint8), 1)
        array([[0, 2]], dtype=uint8)
    """

    def __call__(self, mask: NdarrayOrTensor, y: Any) -> NdarrayOrTensor:
        """Label the foreground of ``mask`` by ``y``.

        Args:
            mask: a binary mask (any shape; numpy array or torch tensor).
            y: the image's class, a non-negative integer (a Python number, 0-d array or tensor).

        Raises:
            ValueError: when ``y`` is not a non-negative integer.
        """
        return mask * (1 + _class_index(y))


class LabelByClassd(MapTransform):
    """Dictionary form of :class:`LabelByClass`: the masks under ``keys`` times ``1 + data[class_key]``, in place.

    Args:
        keys: the masks (e.g. ``label``, the level's supervision of the lesion).
        class_key: the image's class (``y``).
        allow_missing_keys: skip absent ``keys`` instead of raising.

    Example (ISIC, bundle config)::

        - _target_: spatialspec.transforms.LabelByClassd
          keys: label
          class_key: y
    """

    def __init__(self, keys: KeysCollection, class_key: str = "y", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.class_key = class_key
        self.transform = LabelByClass()

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.transform(d[key], d[self.class_key])
        return d


LabelByClassD = LabelByClassDict = LabelByClassd
