"""Losses of spatialspec."""

from __future__ import annotations

from .cross_entropy import ChannelCrossEntropyLoss
from .group_dro import GroupDROLoss

__all__ = ["ChannelCrossEntropyLoss", "GroupDROLoss"]
