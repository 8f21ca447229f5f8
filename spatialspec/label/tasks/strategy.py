"""Active learning by shortcut disagreement (see :mod:`spatialspec.label.disagreement`).

The next image to annotate is the unlabelled one on which the binary model and the location-supervised model
disagree most about abnormality, compared over the unlabelled pool (standardised logits by default): where a
shortcut shows (Saab et al. 2022, Sec. 3.2), a location label teaches the most. Probabilities are cached per image
and checkpoint, so a new image or a retrained model is rescored and nothing else is.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.strategy import Strategy

from spatialspec.label.disagreement import rank_by_disagreement

from .infer import SpatialSpecInferTask, image_probability

__all__ = ["ShortcutDisagreementStrategy"]

logger = logging.getLogger(__name__)


class ShortcutDisagreementStrategy(Strategy):
    """``disagreement``: rank unlabelled images by how differently the two models score them
    (:func:`spatialspec.label.rank_by_disagreement`).

    Args:
        binary: the ``binary`` infer task.
        location: the location-supervised infer task (``segmentation`` or ``bbox``).
        top: how many of the ranking the response lists besides the chosen image.

    The response is MONAI Label's ``{"id": ...}`` plus ``disagreement``, both probabilities and pool ranks, the
    location model's name, the method and ``ranking`` (the ``top`` most disagreeing images). Request keys:
    ``device``, ``top``, ``method`` (``logit``, ``rank`` or ``probability``).
    """

    def __init__(self, binary: SpatialSpecInferTask, location: SpatialSpecInferTask, location_name: str,
                 top: int = 10) -> None:
        super().__init__(f"Unlabelled image where 'binary' and '{location_name}' disagree most (shortcut reliance)")
        self.binary = binary
        self.location = location
        self.location_name = location_name
        self.top = top
        self._cache: dict[tuple[str, str], tuple[tuple[float, float], float]] = {}

    def _probability(self, role: str, image_id: str, path: str, device: str | None) -> float:
        """The model's probability for the image, recomputed only when the checkpoint or the image file changed."""
        task = self.binary if role == "binary" else self.location
        version = (task.checkpoint_mtime(), os.stat(path).st_mtime)
        cached = self._cache.get((role, image_id))
        if cached is not None and cached[0] == version:
            return cached[1]
        probability, _ = image_probability(task, path, device)
        self._cache[(role, image_id)] = (version, probability)
        return probability

    def __call__(self, request: dict[str, Any], datastore: Datastore) -> dict[str, Any]:
        """Score every unlabelled image with both models and return the most disagreeing one."""
        images = datastore.get_unlabeled_images()
        if not images:
            logger.info("disagreement: every image is labelled")
            return {}
        device = request.get("device")
        binary, location = {}, {}
        for image_id in images:
            path = datastore.get_image_uri(image_id)
            binary[image_id] = self._probability("binary", image_id, path, device)
            location[image_id] = self._probability("location", image_id, path, device)
        method = request.get("method", "logit")
        ranking = rank_by_disagreement(binary, location, method)
        top = int(request.get("top", self.top))
        return {**ranking[0], "location_model": self.location_name, "method": method,
                "ranking": ranking[:max(top, 1)]}
