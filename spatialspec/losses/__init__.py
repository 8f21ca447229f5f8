"""Losses of spatialspec."""

from __future__ import annotations

from .cross_entropy import ChannelCrossEntropyLoss
from .group_dro import GroupDROLoss, GroupDROObjective
from .pixel_similarity import PixelSimilarityLoss

__all__ = ["ChannelCrossEntropyLoss", "GroupDROLoss", "GroupDROObjective", "PixelSimilarityLoss"]
