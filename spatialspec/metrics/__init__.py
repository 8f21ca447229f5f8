"""Metrics of spatialspec: robust and subgroup AUROC (Sec. 5.1) and the per-artifact AUROC gaps of ISIC (Sec. 5.1)."""

from __future__ import annotations

from .artifacts import artifact_auroc_gaps
from .robust_auroc import FIGURE_NAMES, PAIR_NAMES, RobustAUROCMetric, auroc, robust_auroc, subgroup_aurocs

__all__ = ["FIGURE_NAMES", "PAIR_NAMES", "RobustAUROCMetric", "auroc", "robust_auroc", "subgroup_aurocs",
           "artifact_auroc_gaps"]
