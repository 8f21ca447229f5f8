"""Mask-guided classification (issue 15): a global-pooling image classifier (Saab et al. 2022, Sec. 5.1, App. A.1)
trained with cross-entropy plus a penalty that uses the location label of any spatial-specificity level (mask, box,
dilation, patch; Sec. 3.1) to say where the evidence must be, instead of supervising a pixel-wise network with it.
Four methods from the literature:

* ``rrr``: Right for the Right Reasons (Ross et al., IJCAI 2017), input gradients of the log-probabilities;
* ``gradmask``: GradMask (Simpson et al. 2019), input gradients of the logit difference;
* ``actdiff``: ActDiff (Viviano et al., ICLR 2021), activations on the image against the image with its background
  replaced;
* ``gain``: attention supervision in the manner of GAIN (Li et al., CVPR 2018), Grad-CAM against the label.

The method package holds what only these methods use: the trainer objectives that wire a loss to the trainer's
forward pass and to the batch's ``location`` / ``has_location`` keys (:mod:`.objective`) and ActDiff's background
replacement (:mod:`.background`). The losses themselves are reusable layer pieces in
:mod:`spatialspec.losses.mask_guided`. The ``mask_guided_classification`` bundle trains them (one overlay each);
images without a location label (a label budget, Sec. 5.2) train with the cross-entropy alone.
"""

from __future__ import annotations

from .background import BACKGROUND_MODES, replace_background
from .objective import (
    ActivationDifferenceObjective,
    AttentionMaskObjective,
    InputGradientObjective,
    MaskGuidedObjective,
)

__all__ = ["BACKGROUND_MODES", "replace_background", "MaskGuidedObjective", "InputGradientObjective",
           "ActivationDifferenceObjective", "AttentionMaskObjective"]
