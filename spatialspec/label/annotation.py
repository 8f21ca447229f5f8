"""Per-image annotation facts for MONAI Label: abnormality count, boxes, and the price of each label type.

The cost model is Sec. 4.1 of Saab et al. (2022), :class:`spatialspec.cost.AnnotationCostModel`: a binary label is
one click, a box two clicks per abnormality and a mask ``n`` clicks per abnormality. The count of abnormalities is
the number of connected components of the image's mask: the annotator's saved label when there is one, otherwise
the location model's prediction.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
from scipy import ndimage

from spatialspec.cost import DEFAULT_COST_LEVELS, AnnotationCostModel
from spatialspec.levels import parse_level

__all__ = ["abnormality_boxes", "annotation_costs", "count_abnormalities", "image_annotation_costs"]


def _plane(mask: Any) -> np.ndarray:
    array = np.asarray(mask)
    while array.ndim > 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"mask: expected a 2-D mask (optionally with a leading channel of 1), got shape "
                         f"{np.asarray(mask).shape}")
    return array > 0


def _components(mask: Any, connectivity: int) -> tuple[np.ndarray, int]:
    if connectivity not in (1, 2):
        raise ValueError(f"connectivity must be 1 or 2, got {connectivity!r}")
    labels, count = ndimage.label(_plane(mask), structure=ndimage.generate_binary_structure(2, connectivity))
    return labels, int(count)


def count_abnormalities(mask: Any, connectivity: int = 2) -> int:
    """Number of abnormalities of a 2-D mask: its connected components (8-connected by default, as the ``bbox``
    level counts them)."""
    return _components(mask, connectivity)[1]


def abnormality_boxes(mask: Any, connectivity: int = 2) -> list[dict[str, list[int]]]:
    """One box per connected component of a 2-D mask, in array index order (axis 0, axis 1).

    Each box is ``{"start": [i0, j0], "end": [i1, j1], "size": [h, w]}`` with ``end`` exclusive, the boxes the
    ``bbox`` level fills (:func:`spatialspec.transforms.bbox_supervision`).
    """
    labels, _ = _components(mask, connectivity)
    boxes = []
    for found in ndimage.find_objects(labels):
        if found is None:
            continue
        start = [int(s.start) for s in found]
        end = [int(s.stop) for s in found]
        boxes.append({"start": start, "end": end, "size": [e - s for s, e in zip(start, end)]})
    return boxes


def annotation_costs(abnormalities: int, model: AnnotationCostModel | None = None,
                     levels: Iterable[str] = DEFAULT_COST_LEVELS) -> dict[str, Any]:
    """The clicks and dollars of labelling an image with ``abnormalities`` abnormalities at each level (Sec. 4.1).

    Returns:
        ``{"abnormalities": k, "cost": {level: dollars}, "clicks": {level: clicks}}``; a negative image (k = 0)
        costs one click at every level.
    """
    model = model if model is not None else AnnotationCostModel()
    names = [parse_level(level).name for level in levels]
    return {"abnormalities": abnormalities, "cost": model.image_costs(abnormalities, names),
            "clicks": {name: model.image_clicks(name, abnormalities) for name in names}}


def image_annotation_costs(mask: Any, model: AnnotationCostModel | None = None,
                           levels: Iterable[str] = DEFAULT_COST_LEVELS, connectivity: int = 2) -> dict[str, Any]:
    """:func:`annotation_costs` of a mask's image, its abnormalities counted with :func:`count_abnormalities`."""
    return annotation_costs(count_abnormalities(mask, connectivity), model, levels)
