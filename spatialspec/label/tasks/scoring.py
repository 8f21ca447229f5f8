"""Scoring: what each label type would cost for each image (Saab et al. 2022, Sec. 4.1).

For every image of the datastore the method counts the abnormalities, on the annotator's final label when there is
one and otherwise on the location model's prediction (reused while that model's checkpoint and the image file are
unchanged, so rescoring after every request stays cheap), prices a binary label, boxes and a mask with
:class:`spatialspec.cost.AnnotationCostModel`, and stores the result in the image's info under
``spatialspec_annotation`` (MONAI Label clients show image info). The response adds totals per label type.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from monai.transforms import LoadImage
from monailabel.interfaces.datastore import Datastore, DefaultLabelTag
from monailabel.interfaces.tasks.scoring import ScoringMethod

from spatialspec.cost import DEFAULT_COST_LEVELS, AnnotationCostModel
from spatialspec.label.annotation import annotation_costs, count_abnormalities

from .infer import SpatialSpecInferTask, image_probability

__all__ = ["AnnotationCostScoring"]

logger = logging.getLogger(__name__)

#: the image-info key the figures are stored under
INFO_KEY = "spatialspec_annotation"

#: request keys that parametrise the cost model, as in ``spatialspec cost``
COST_MODEL_KEYS = ("seg_clicks", "click_seconds", "hourly_rate")


class AnnotationCostScoring(ScoringMethod):
    """``annotation_cost``: per-image clicks and dollars of each label type (binary, bbox, seg by default).

    Args:
        location: the location infer task that counts abnormalities of unlabelled images; ``None`` scores labelled
            images only.
        location_name: its model name, recorded as the count's source.
        levels: the label types to price.

    Request keys: ``seg_clicks``, ``click_seconds``, ``hourly_rate`` (the cost model's fields) and ``device``.
    """

    def __init__(self, location: SpatialSpecInferTask | None, location_name: str = "segmentation",
                 levels: tuple[str, ...] = tuple(DEFAULT_COST_LEVELS)) -> None:
        super().__init__("Annotation cost of each label type per image (binary click, boxes, mask; Sec. 4.1)")
        self.location = location
        self.location_name = location_name
        self.levels = levels
        self._loader = LoadImage(image_only=True)

    def _count(self, image_id: str, datastore: Datastore, previous: dict[str, Any], device: str | None
               ) -> tuple[int, dict[str, Any]] | None:
        """The image's abnormality count and where it comes from (``source``, and for a prediction the checkpoint's
        and the image file's times); a stored prediction is reused while both are unchanged."""
        label_id = datastore.get_label_by_image_id(image_id, DefaultLabelTag.FINAL)
        if label_id:
            label = self._loader(datastore.get_label_uri(label_id, DefaultLabelTag.FINAL))
            return count_abnormalities(label), {"source": "final label"}
        if self.location is None:
            return None
        path = datastore.get_image_uri(image_id)
        origin = {"source": f"prediction of '{self.location_name}'",
                  "checkpoint_mtime": self.location.checkpoint_mtime(), "image_mtime": os.stat(path).st_mtime}
        if all(previous.get(key) == value for key, value in origin.items()):
            return int(previous["abnormalities"]), origin
        _, prediction = image_probability(self.location, path, device)
        return count_abnormalities(prediction), origin

    def __call__(self, request: dict[str, Any], datastore: Datastore) -> dict[str, Any]:
        """Price every image and store the figures in its info."""
        try:
            model = AnnotationCostModel(**{k: float(request[k]) for k in COST_MODEL_KEYS if k in request})
        except (TypeError, ValueError) as e:
            raise ValueError(f"annotation_cost request: {e}") from e
        device = request.get("device")
        images: dict[str, dict[str, Any]] = {}
        totals = {level: 0.0 for level in self.levels}
        for image_id in datastore.list_images():
            previous = datastore.get_image_info(image_id).get(INFO_KEY) or {}
            found = self._count(image_id, datastore, previous, device)
            if found is None:
                continue
            count, origin = found
            facts = {**annotation_costs(count, model, self.levels), **origin}
            if facts != previous:  # each update rewrites the datastore's JSON file
                datastore.update_image_info(image_id, {INFO_KEY: facts})
            images[image_id] = facts
            for level, dollars in facts["cost"].items():
                totals[level] = totals.get(level, 0.0) + dollars
        logger.info(f"annotation_cost: {len(images)} images priced; totals {totals}")
        return {"images": images, "total_cost": totals,
                "model": {"seg_clicks": model.seg_clicks, "click_seconds": model.click_seconds,
                          "hourly_rate": model.hourly_rate}}
