"""Theory of spatial specificity (Saab et al., Sec. 3.3 and Appendix B): the variance and MI measures, in closed
form for the synthetic data model and empirically over the pixels of any data set."""

from __future__ import annotations

from .closed_form import (
    ROUNDINGS,
    Condition8,
    closed_form_measures,
    condition_8,
    gamma,
    mi_closed_form,
    specificity_distance,
    spurious_rate,
    variance_closed_form,
)
from .empirical import (
    MeasureArrays,
    datalist_arrays,
    dilate_mask,
    empirical_measures,
    joint_counts,
    level_supervision,
    mi_from_counts,
    mi_measure,
    synthetic_arrays,
    variance_measure,
)
from .measures import PAPER_RESOLUTIONS, default_resolutions, synthetic_condition_8, theory_measures

__all__ = [
    "ROUNDINGS",
    "Condition8",
    "closed_form_measures",
    "condition_8",
    "gamma",
    "mi_closed_form",
    "specificity_distance",
    "spurious_rate",
    "variance_closed_form",
    "MeasureArrays",
    "datalist_arrays",
    "dilate_mask",
    "empirical_measures",
    "joint_counts",
    "level_supervision",
    "mi_from_counts",
    "mi_measure",
    "synthetic_arrays",
    "variance_measure",
    "PAPER_RESOLUTIONS",
    "default_resolutions",
    "synthetic_condition_8",
    "theory_measures",
]
