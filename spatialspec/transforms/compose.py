"""One flat :class:`~monai.transforms.Compose` of several parts (loading, target, intensity, caching, augmentation),
so that a bundle lists its parts by id and :class:`~monai.data.CacheDataset` still caches the deterministic prefix:
it looks for the first random transform among the transforms the Compose holds directly, and a nested Compose
(itself randomizable) would end the cached part at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from monai.transforms import Compose

__all__ = ["flat_compose"]


def flat_compose(transforms: Sequence[Callable | Sequence[Callable]]) -> Compose:
    """A :class:`~monai.transforms.Compose` of ``transforms`` in order, every nested ``Compose`` and list inlined.

    Args:
        transforms: transforms, ``Compose`` objects and lists of transforms (a list may be empty).

    Raises:
        TypeError: naming the entry that is neither callable nor a list of callables.

    Example (bundle config)::

        train#dataset#transform:
          _target_: spatialspec.transforms.flat_compose
          transforms: ["@train#preprocessing", "@train#augmentation"]
    """
    flat: list[Callable] = []
    for i, part in enumerate(transforms):
        items = part if isinstance(part, (list, tuple)) else [part]
        for item in items:
            if not callable(item):
                raise TypeError(f"flat_compose: transforms[{i}] holds {type(item).__name__}, not a transform")
            flat.append(item)
    return Compose(flat).flatten()
