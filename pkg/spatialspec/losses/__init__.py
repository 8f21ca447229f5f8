"""Losses of spatialspec."""

from __future__ import annotations

from .cross_entropy import ChannelCrossEntropyLoss

__all__ = ["ChannelCrossEntropyLoss"]
