"""Annotation cost of spatial specificity (Saab et al., Sec. 4.1): clicks, hours and dollars per level."""

from __future__ import annotations

from .model import DEFAULT_COST_LEVELS, SECONDS_PER_HOUR, AnnotationCostModel, LevelCost

__all__ = ["AnnotationCostModel", "LevelCost", "DEFAULT_COST_LEVELS", "SECONDS_PER_HOUR"]
