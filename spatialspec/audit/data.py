"""The audit's view of a data set: channel-first arrays of images and masks, whether the entries hold arrays (the
synthetic generator, Sec. 3.2.2) or file paths (a decathlon datalist)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["load_array", "require_spurious_masks"]

_LOADER = None


def load_array(entry: Mapping[str, Any], key: str) -> np.ndarray:
    """``entry[key]`` as a float32 channel-first array: arrays as they are, file paths read like the bundles read
    them (:class:`spatialspec.transforms.LoadImageOrArrayd`).

    Raises:
        ValueError: naming the key when the entry lacks it.
        RuntimeError: naming the file when it cannot be read.
    """
    if entry.get(key) is None:
        raise ValueError(f"entry {entry.get('id', '')!r} has no {key!r}")
    value = entry[key]
    if not (isinstance(value, (str, bytes)) or hasattr(value, "__fspath__")):
        array = np.asarray(value, dtype=np.float32)
        return array[None] if array.ndim == 2 else array
    global _LOADER
    if _LOADER is None:
        from spatialspec.transforms import LoadImageOrArrayd

        _LOADER = LoadImageOrArrayd(keys="value")
    loaded = _LOADER({"value": value, "id": entry.get("id", "")})["value"]
    return np.asarray(loaded.detach().cpu().numpy() if hasattr(loaded, "detach") else loaded, dtype=np.float32)


def require_spurious_masks(entries: Sequence[Mapping[str, Any]], source: str = "the data") -> None:
    """Check that every entry names a spurious mask.

    Raises:
        ValueError: "the audit needs spurious masks", naming ``source`` and how many entries lack one.
    """
    missing = [i for i, e in enumerate(entries) if e.get("spurious_mask") is None]
    if not entries:
        raise ValueError(f"{source} has no entries to audit")
    if len(missing) == len(entries):
        raise ValueError(f"{source} has no 'spurious_mask' field: the audit needs spurious masks (the region S of "
                         "each image; an empty mask for images without the spurious feature)")
    if missing:
        raise ValueError(f"{source}: {len(missing)} of {len(entries)} entries lack 'spurious_mask' (first: entry "
                         f"{missing[0]}): the audit needs spurious masks for every image")
