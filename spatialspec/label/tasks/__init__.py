"""MONAI Label tasks over spatialspec bundles (needs ``monailabel``: ``bash scripts/install.sh --label``).

- :class:`LocationInferTask` / :class:`BinaryInferTask`: the ``segmentation``, ``bbox`` and ``binary`` models;
- :class:`LocationTrainTask`: fine-tunes a location bundle on the datastore's final labels;
- :class:`ShortcutDisagreementStrategy`: next image = most binary-vs-location disagreement;
- :class:`AnnotationCostScoring`: per-image annotation cost of each label type (Sec. 4.1).
"""

from .infer import BinaryInferTask, LocationInferTask, SpatialSpecInferTask
from .scoring import AnnotationCostScoring
from .strategy import ShortcutDisagreementStrategy
from .train import LocationTrainTask

__all__ = [
    "AnnotationCostScoring",
    "BinaryInferTask",
    "LocationInferTask",
    "LocationTrainTask",
    "ShortcutDisagreementStrategy",
    "SpatialSpecInferTask",
]
