"""Ignite handlers of spatialspec."""

from __future__ import annotations

from .robust_auroc import RobustAUROC
from .run_params import attach_run_params, flatten_params

__all__ = ["RobustAUROC", "attach_run_params", "flatten_params"]
