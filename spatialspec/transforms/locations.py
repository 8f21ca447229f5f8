"""Where a pixel-wise model finds the abnormality, written in the input's geometry (Saab et al. 2022, Sec. 3.1: a
location-supervised model predicts a mask beside its image score).

:func:`location_boxes` turns the predicted abnormality mask into one box per connected component with its score;
:class:`SaveLocationd` writes, per image, the mask as an 8-bit PNG of the input's shape and orientation and the
boxes as JSON, in input pixel coordinates. The inference bundle runs it after its postprocessing (MONAI's
``PostProcessing`` handler), so the ``postprocessing`` MONAI Label serves stays free of writers.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.config import KeysCollection
from monai.transforms import MapTransform
from scipy import ndimage

from spatialspec.atomic import write_json_atomic
from spatialspec.data.export import save_png

from .inputs import input_grid

__all__ = ["location_boxes", "SaveLocationd", "SaveLocationD", "SaveLocationDict"]


def location_boxes(mask: np.ndarray, probability: np.ndarray, connectivity: int = 2) -> list[dict[str, Any]]:
    """One box per connected component of a ``rows x columns`` mask, in pixel coordinates of that grid.

    Each box is ``{"x0", "y0", "x1", "y1", "pixels", "score"}``: ``x`` counts columns and ``y`` rows, the ends are
    exclusive, ``pixels`` is the component's size and ``score`` the mean of ``probability`` (the abnormality
    probability, same shape) over the component. Components are 8-connected by default (``connectivity`` 2), as the
    ``bbox`` level counts them.

    Raises:
        ValueError: for masks that are not 2-D or a probability map of another shape.
    """
    mask, probability = np.asarray(mask) > 0, np.asarray(probability, dtype=np.float64)
    if mask.ndim != 2 or probability.shape != mask.shape:
        raise ValueError(f"location_boxes: expected a 2-D mask and a probability map of its shape, got {mask.shape} "
                         f"and {probability.shape}")
    labels, count = ndimage.label(mask, structure=ndimage.generate_binary_structure(2, connectivity))
    if count == 0:
        return []
    index = np.arange(1, count + 1)
    scores = ndimage.mean(probability, labels, index)
    sizes = ndimage.sum_labels(np.ones_like(probability), labels, index)
    return [{"x0": int(cols.start), "y0": int(rows.start), "x1": int(cols.stop), "y1": int(rows.stop),
             "pixels": int(size), "score": float(score)}
            for (rows, cols), size, score in zip(ndimage.find_objects(labels), sizes, scores)]


def _name(data: Mapping[Hashable, Any], filename: str) -> str:
    """The entry's ``id`` (or the file name without extension), safe as a file name."""
    name = str(data.get("id") or Path(filename).stem or "image")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)


class SaveLocationd(MapTransform):
    """Write the predicted abnormality mask (PNG) and its boxes (JSON) of one sample in the input's geometry.

    ``keys`` hold the class probabilities (``C x ...``, after the softmax). The mask is the pixels whose most likely
    class is ``channel`` (the abnormality: the last class), brought back to the input's shape by nearest-neighbour
    resizing and to its orientation (the loader's ``input_shape`` and ``input_axes`` metadata,
    :class:`~spatialspec.transforms.LoadInputImage`): ``<output_dir>/masks/<id>.png`` (0 / 255, upright like the
    input). ``<output_dir>/boxes/<id>.json`` holds ``image`` (the input file), ``shape`` (rows, columns),
    ``score`` (the image score, when ``score_key`` is present) and ``boxes`` (:func:`location_boxes`). Both files
    are written atomically.

    Args:
        keys: the probability keys (one per sample; ``prob``).
        output_dir: where ``masks/`` and ``boxes/`` go.
        channel: the abnormality class (negative counts from the end).
        image_key: the loaded image, whose metadata names the input and its geometry.
        score_key: the image score to copy into the JSON.
        connectivity: 1 (4-connected) or 2 (8-connected) components.
        allow_missing_keys: skip keys that are absent.
    """

    def __init__(self, keys: KeysCollection, output_dir: str | os.PathLike, channel: int = -1,
                 image_key: str = "image", score_key: str = "score", connectivity: int = 2,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if connectivity not in (1, 2):
            raise ValueError(f"SaveLocationd: connectivity must be 1 or 2, got {connectivity!r}")
        self.output_dir = Path(output_dir)
        self.channel = int(channel)
        self.image_key = image_key
        self.score_key = score_key
        self.connectivity = connectivity

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        meta = getattr(d.get(self.image_key), "meta", {}) or {}
        filename = str(meta.get("filename_or_obj", ""))
        name = _name(d, filename)
        for key in self.key_iterator(d):
            prob = torch.as_tensor(d[key]).detach().float().cpu()
            if prob.ndim != 3:
                raise ValueError(f"SaveLocationd: '{key}' must be a C x H x W probability map, got shape "
                                 f"{tuple(prob.shape)} (the classifier family has no location output)")
            channel = self.channel % prob.shape[0]
            planes = torch.stack([(prob.argmax(dim=0) == channel).float(), prob[channel]])
            loaded_shape, transposed = input_grid(meta, planes.shape[1:])
            if tuple(planes.shape[1:]) != loaded_shape:
                planes = F.interpolate(planes[None], size=loaded_shape, mode="nearest-exact")[0]
            mask, probability = (p.numpy().T if transposed else p.numpy() for p in planes)
            save_png(self.output_dir / "masks" / f"{name}.png", (mask > 0).astype(np.uint8) * 255)
            record: dict[str, Any] = {"image": filename, "shape": list(mask.shape)}
            if self.score_key in d:
                record["score"] = float(torch.as_tensor(d[self.score_key]).reshape(-1)[0])
            record["boxes"] = location_boxes(mask, probability, self.connectivity)
            write_json_atomic(self.output_dir / "boxes" / f"{name}.json", record)
        return d


SaveLocationD = SaveLocationDict = SaveLocationd
