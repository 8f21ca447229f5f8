"""MONAI Label integration: serve the spatial-specificity models to annotators and steer what they annotate.

Saab et al. (MLHC 2022) argue that location labels (boxes, masks) buy robustness against spurious features at an
annotation price (Sec. 4.1, Sec. 5.2). This package brings that trade-off to the annotation tool:

- :mod:`spatialspec.label.app` is a MONAI Label app (``main.py``) that serves the ``segmentation``, ``bbox`` and
  ``binary`` bundles, fine-tunes the location models on the datastore's labels, ranks unlabelled images by how
  much the binary and the location-supervised model disagree, and prices each image's label types;
- :mod:`spatialspec.label.install` lays that app out with bundles and checkpoints (``spatialspec label-app``);
- :mod:`spatialspec.label.disagreement`, :mod:`spatialspec.label.annotation` hold the logic the MONAI Label tasks
  call, free of MONAI Label so that they run (and are tested) in the main environment.

The MONAI Label task classes live in :mod:`spatialspec.label.tasks`, which imports ``monailabel`` and is only
importable in the label environment (``bash scripts/install.sh --label``).
"""

from .annotation import (
    abnormality_boxes,
    annotation_costs,
    count_abnormalities,
    image_annotation_costs,
)
from .disagreement import percentile_ranks, rank_by_disagreement, shortcut_disagreement
from .install import DEFAULT_BUNDLES, DEFAULT_METHODS, install_label_app, packaged_app_dir

__all__ = [
    "DEFAULT_BUNDLES",
    "DEFAULT_METHODS",
    "abnormality_boxes",
    "annotation_costs",
    "count_abnormalities",
    "image_annotation_costs",
    "install_label_app",
    "packaged_app_dir",
    "percentile_ranks",
    "rank_by_disagreement",
    "shortcut_disagreement",
]
