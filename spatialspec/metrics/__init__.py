"""Metrics of spatialspec: robust and subgroup AUROC (Sec. 5.1), their bootstrap confidence intervals and paired
comparisons, and the per-artifact AUROC gaps of ISIC (Sec. 5.1).

All of them are numpy; :class:`RobustAUROCMetric` (a MONAI ``Cumulative``) is imported on first access, so that
reading results needs no torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .artifacts import artifact_auroc_gaps
from .bootstrap import (
    SUBGROUPS,
    PairedDifference,
    bootstrap_intervals,
    paired_bootstrap_difference,
    pooled_paired_bootstrap_difference,
    seed_mean_interval,
    stratified_weights,
    subgroup_counts,
    weighted_aurocs,
)
from .robust_auroc import FIGURE_NAMES, PAIR_NAMES, auroc, robust_auroc, subgroup_aurocs

if TYPE_CHECKING:
    from .robust_auroc_metric import RobustAUROCMetric

__all__ = ["FIGURE_NAMES", "PAIR_NAMES", "RobustAUROCMetric", "auroc", "robust_auroc", "subgroup_aurocs",
           "artifact_auroc_gaps", "SUBGROUPS", "PairedDifference", "bootstrap_intervals",
           "paired_bootstrap_difference", "pooled_paired_bootstrap_difference", "seed_mean_interval",
           "stratified_weights", "subgroup_counts", "weighted_aurocs"]


def __getattr__(name: str) -> Any:
    """:class:`RobustAUROCMetric` on first access (PEP 562): it subclasses MONAI's ``Cumulative``."""
    if name == "RobustAUROCMetric":
        from .robust_auroc_metric import RobustAUROCMetric

        return RobustAUROCMetric
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    """The module's names and :data:`__all__`, imported or not."""
    return sorted(set(globals()) | set(__all__))
