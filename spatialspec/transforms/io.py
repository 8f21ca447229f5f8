"""Loading that accepts both a datalist's file paths and the synthetic generator's in-memory arrays."""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor, get_track_meta
from monai.transforms import LoadImage, MapTransform

__all__ = ["LoadImageOrArrayd", "LoadImageOrArrayD", "LoadImageOrArrayDict"]


class LoadImageOrArrayd(MapTransform):
    """Load ``keys`` with MONAI's :class:`~monai.transforms.LoadImage` (channel first) when they hold a path, or
    wrap them as a float32 :class:`~monai.data.MetaTensor` when they already hold a channel-first array.

    This lets one bundle pipeline read the built-in synthetic data (arrays) and any decathlon datalist (files).

    Args:
        keys: the keys to load.
        reader: passed to :class:`~monai.transforms.LoadImage` (``None`` picks by extension).
        dtype: the output dtype.
        allow_missing_keys: skip keys that are absent.
        track_meta: ``False`` returns plain tensors, without image metadata (the values are the same): for a
            pipeline whose caching drops the metadata anyway (the bundles' ``train#caching``), where building a
            :class:`~monai.data.MetaTensor` per sample and key costs most of the cache's fill time. ``None`` (the
            default) follows MONAI's :func:`~monai.data.get_track_meta`. Metadata only: it is not part of a run's
            fingerprint (:mod:`spatialspec.identity`).
    """

    def __init__(self, keys: KeysCollection, reader: Any = None, dtype: torch.dtype = torch.float32,
                 allow_missing_keys: bool = False, track_meta: bool | None = None) -> None:
        super().__init__(keys, allow_missing_keys)
        if track_meta is not None and not isinstance(track_meta, bool):
            raise ValueError(f"LoadImageOrArrayd: track_meta must be True, False or None, got {track_meta!r}")
        self.loader = LoadImage(reader=reader, image_only=True, ensure_channel_first=True, dtype=np.float32)
        self.dtype = dtype
        # private: spatialspec.identity reads public attributes only, and metadata does not change a run's result
        self._track_meta = track_meta

    @property
    def track_meta(self) -> bool:
        """Whether the loaded images are :class:`~monai.data.MetaTensor` objects (see the class docstring)."""
        return get_track_meta() if self._track_meta is None else self._track_meta

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        track_meta = self.track_meta
        for key in self.key_iterator(d):
            value = d[key]
            if isinstance(value, (str, bytes)) or hasattr(value, "__fspath__"):
                try:
                    loaded = self.loader(value)
                except Exception as e:
                    raise RuntimeError(f"cannot load '{key}' from file {value}: {e}") from e
                if not track_meta and isinstance(loaded, MetaTensor):
                    loaded = loaded.as_tensor()
            elif not track_meta:
                loaded = torch.as_tensor(np.asarray(value))
            else:
                # in-memory samples are named after their id so savers and reports can tell them apart
                array = torch.as_tensor(np.asarray(value))
                loaded = MetaTensor(array, meta={"filename_or_obj": f"{d.get('id', 'sample')}_{key}",
                                                 "original_channel_dim": "no_channel",
                                                 "spatial_shape": tuple(array.shape[1:])})
            if loaded.ndim < 3:
                loaded = loaded[None]
            d[key] = loaded.to(self.dtype)
        return d


LoadImageOrArrayD = LoadImageOrArrayDict = LoadImageOrArrayd
