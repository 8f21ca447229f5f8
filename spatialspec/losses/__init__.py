"""Losses of spatialspec: reusable loss modules (a method's trainer objective that wires one lives in its method
package, e.g. :class:`spatialspec.robust.george.GroupDROObjective` over :class:`GroupDROLoss`)."""

from __future__ import annotations

from spatialspec._deprecated import moved_names

from .cross_entropy import ChannelCrossEntropyLoss
from .group_dro import GroupDROLoss
from .image_similarity import ImageSimilarityLoss
from .mask_guided import (
    ActivationDifferenceLoss,
    AttentionMaskLoss,
    GradMaskLoss,
    MaskGuidedLoss,
    RightReasonsLoss,
)
from .mixed_supervision import MixedSupervisionLoss
from .pixel_similarity import PixelSimilarityLoss

__all__ = ["ChannelCrossEntropyLoss", "GroupDROLoss", "ImageSimilarityLoss", "PixelSimilarityLoss"]
__all__ += ["MixedSupervisionLoss"]
__all__ += ["MaskGuidedLoss", "RightReasonsLoss", "GradMaskLoss", "ActivationDifferenceLoss", "AttentionMaskLoss"]

__getattr__ = moved_names(__name__, {"GroupDROObjective": "spatialspec.robust.george.GroupDROObjective"})
