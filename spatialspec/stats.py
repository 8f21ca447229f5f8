"""Summary statistics over seeds, shared by the study report, the reproduction scripts and the budget planner
(mean ± std over 3 seeds, as the paper reports its tables)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["nan_mean_std"]


def nan_mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and standard deviation (ddof=0) of the values that are not NaN; ``(nan, nan)`` when none is."""
    finite = np.asarray(values, dtype=float)
    finite = finite[~np.isnan(finite)]
    return (float(finite.mean()), float(finite.std())) if finite.size else (math.nan, math.nan)
