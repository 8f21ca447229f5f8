"""Loading an inference input with the training preprocessing (Saab et al. 2022, Sec. 5, App. A.1): a raw DICOM,
JPEG or PNG is converted the way ``spatialspec data siim|isic`` writes it (decoded, resized to the training size by
:func:`spatialspec.data.export.resize_image`) and laid out as MONAI's PIL reader loads the written PNG, so the network
sees the values training saw; arrays and other files load as in training.

The input's own shape and axis order are kept in the image's metadata (``input_shape``, ``input_axes``), so the
outputs can be written back in the input's geometry (:class:`spatialspec.transforms.SaveLocationd`).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Resize, Resized, Transform

from spatialspec.data.export import resize_image
from spatialspec.data.folder import INPUT_EXTENSIONS, read_input_image

from .io import LoadImageOrArrayd

__all__ = ["LoadInputImage", "LoadInputImaged", "LoadInputImageD", "LoadInputImageDict", "training_image_size",
           "input_grid", "INPUT_SHAPE", "INPUT_AXES"]

#: metadata key: the input's spatial shape in its own axis order (rows, columns for an image file)
INPUT_SHAPE = "input_shape"
#: metadata key: ``"xy"`` when the loaded axes are the input's transposed (MONAI's PIL layout), ``"yx"`` otherwise
INPUT_AXES = "input_axes"


def input_grid(meta: Mapping[str, Any], loaded_shape: Sequence[int]) -> tuple[tuple[int, ...], bool]:
    """The input's spatial shape in the loaded image's axis order, and whether those axes are the input's
    transposed (MONAI's PIL layout), from the loader's ``input_shape`` / ``input_axes`` metadata
    (:class:`LoadInputImage`); ``loaded_shape`` (not transposed) when the metadata has none."""
    if INPUT_SHAPE not in meta:
        return tuple(int(s) for s in loaded_shape), False
    shape = tuple(int(s) for s in np.asarray(meta[INPUT_SHAPE]).reshape(-1))
    transposed = str(meta.get(INPUT_AXES, "yx")) == "xy"
    return (tuple(reversed(shape)) if transposed else shape), transposed


def training_image_size(loading: Sequence[Any], key: str = "image") -> tuple[int, ...] | None:
    """The spatial size the training ``loading`` transforms resize ``key`` to (its last
    :class:`~monai.transforms.Resized`), or ``None`` when training keeps the loaded size (the synthetic data).

    The data set configs resize in ``train#loading`` (``image_size``); inference reads that size from there so that
    it cannot drift from training.
    """
    size = None
    for transform in loading:
        if isinstance(transform, Resized) and key in transform.keys:
            size = tuple(int(s) for s in transform.resizer.spatial_size)
    return size


class LoadInputImage(Transform):
    """Load one inference input as a channel-first float32 :class:`~monai.data.MetaTensor` at the training size.

    A ``.dcm``, ``.png``, ``.jpg`` or ``.jpeg`` file is decoded like the data set writers decode their sources
    (:func:`spatialspec.data.folder.read_input_image`), resized to ``spatial_size`` with the writers' own resize
    (area averaging, rounded to 8 bits: a no-op at the written size) and transposed to MONAI's PIL layout
    (``C x columns x rows``), which is how the training PNGs load. Anything else (an in-memory array of the synthetic
    data, a NIfTI file) loads with :class:`~spatialspec.transforms.LoadImageOrArrayd` and, if ``spatial_size`` is
    set, MONAI's area :class:`~monai.transforms.Resize`, as in training.

    Args:
        spatial_size: the training size in loaded axis order (:func:`training_image_size`); ``None`` keeps the size.
        channels: the network's input channels (1: DICOM and grayscale images; 3: RGB).

    Raises:
        InputError: naming the file when it cannot be read (see :func:`spatialspec.data.folder.read_input_image`).
    """

    def __init__(self, spatial_size: Sequence[int] | None = None, channels: int = 1) -> None:
        self.spatial_size = None if spatial_size is None else tuple(int(s) for s in spatial_size)
        self.channels = int(channels)
        self._fallback = LoadImageOrArrayd(keys="image", track_meta=True)

    def __call__(self, value: Any, name: str = "sample") -> MetaTensor:
        """Load ``value`` (a path or an array; an array is named ``<name>_image`` in the metadata)."""
        is_path = isinstance(value, str) or hasattr(value, "__fspath__")
        if is_path and Path(os.fspath(value)).suffix.lower() in INPUT_EXTENSIONS:
            return self._load_file(Path(os.fspath(value)))
        loaded = self._fallback({"image": value, "id": name})["image"]
        input_shape = tuple(loaded.shape[1:])
        if self.spatial_size is not None:
            loaded = Resize(self.spatial_size, mode="area")(loaded)
        loaded.meta[INPUT_SHAPE] = np.asarray(input_shape)
        loaded.meta[INPUT_AXES] = "yx"
        return loaded

    def _load_file(self, path: Path) -> MetaTensor:
        array = read_input_image(path, self.channels)
        rows, columns = array.shape[:2]
        if self.spatial_size is not None:
            # the loaded axes are (columns, rows): the writer's (rows, columns) is the reverse
            array = resize_image(array, tuple(reversed(self.spatial_size)))
        planes = array[None] if array.ndim == 2 else np.moveaxis(array, -1, 0)
        tensor = torch.from_numpy(np.ascontiguousarray(planes.transpose(0, 2, 1), dtype=np.float32))
        # "no_channel": what MONAI's writers need to save the one-channel predictions derived from this image (an
        # RGB image's -1 would make SaveImaged look for three channels)
        return MetaTensor(tensor, meta={"filename_or_obj": str(path), "spatial_shape": np.asarray(tensor.shape[1:]),
                                        "original_channel_dim": "no_channel",
                                        INPUT_SHAPE: np.asarray((rows, columns)), INPUT_AXES: "xy"})


class LoadInputImaged(MapTransform):
    """Dict form of :class:`LoadInputImage`: loads ``keys`` (an entry's ``id`` names in-memory arrays).

    Args:
        keys: the keys to load (``image``).
        spatial_size: the training size (:func:`training_image_size`); ``None`` keeps the size.
        channels: the network's input channels.
        allow_missing_keys: skip keys that are absent.
    """

    def __init__(self, keys: KeysCollection, spatial_size: Sequence[int] | None = None, channels: int = 1,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.loader = LoadInputImage(spatial_size, channels)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.loader(d[key], name=str(d.get("id", "sample")))
        return d


LoadInputImageD = LoadInputImageDict = LoadInputImaged
