"""The names of the model-selection rules a study offers (``spatialspec study --select``), free of torch and MONAI so
that the command line and the study runner read them without importing either. The rules themselves, and every other
rule a bundle may use, are :data:`spatialspec.handlers.selection.SELECTION_RULES`, which re-exports this name."""

from __future__ import annotations

__all__ = ["STUDY_RULES"]

#: the rules ``spatialspec study --select`` offers: they apply to every bundle
STUDY_RULES = ("val_loss", "val_robust_auroc", "val_worst_group_auroc", "last")
