"""Mixed supervision in one run (issue 15, Sec. 3; Saab et al. 2022, Sec. 4): a pixel-wise network trained on masks
for a few images, boxes (or any location level) for more, and image labels only for the rest.

* :func:`flag_mixed_labels`: which training images keep which location label under a budget or a mix
  (``{"seg": 20, "bbox": 60}``), the nested, class-stratified order of
  :func:`spatialspec.data.subsample.stratified_subset`; negative images beyond the budget keep their all-background
  mask, which costs nothing;
* :class:`MixedSpecificityLabeld`: the target transform applying each image's own level;
* :class:`MixedSupervisionObjective`: the trainer's loss function, :class:`spatialspec.losses.MixedSupervisionLoss`
  over the batch's ``has_location`` and ``y`` keys.

The ``mixed`` method (``bundles/segmentation/configs/mixed.yaml``) wires them.
"""

from __future__ import annotations

from .data import BINARY, flag_mixed_labels
from .objective import MixedSupervisionObjective
from .transforms import MixedSpecificityLabeld

__all__ = ["BINARY", "flag_mixed_labels", "MixedSpecificityLabeld", "MixedSupervisionObjective"]
