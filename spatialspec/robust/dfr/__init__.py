"""Deep Feature Reweighting (Kirichenko et al., ICLR 2023), a baseline on binary labels next to JTT and GEORGE
(Saab et al. 2022, Table 1, App. A.2): the ERM classifier's penultimate features are kept and its last layer is
refitted as an L1-penalised logistic regression on group-balanced subsets of the validation split. It reads the
spurious label s on the validation split (to form the (y, s) groups), never on training or test.

The method package holds what only DFR uses; the ``dfr_classification`` bundle wires it:

- the fit, free of torch: :class:`DeepFeatureReweighting` (:mod:`.reweighting`: C chosen on two halves of the
  validation split, then refitted on all of it; :func:`balanced_subset`, :func:`fit_balanced`);
- the end of training: :class:`DFRLastLayerWriter` (:mod:`.writer`) keeps the selected ERM checkpoint as
  ``erm_model.pt`` and writes the reweighted network as ``model.pt`` with the record ``dfr.json``.
"""

from __future__ import annotations

from .reweighting import (
    C_GRID,
    GROUP_NAMES,
    TUNING_METRICS,
    DeepFeatureReweighting,
    balanced_subset,
    fit_balanced,
    group_ids,
    l1_logistic_regression,
    worst_group_accuracy,
)
from .writer import DFR_RECORD, ERM_MODEL, DFRLastLayerWriter

__all__ = ["C_GRID", "GROUP_NAMES", "TUNING_METRICS", "DeepFeatureReweighting", "balanced_subset", "fit_balanced",
           "group_ids", "l1_logistic_regression", "worst_group_accuracy", "DFRLastLayerWriter", "ERM_MODEL",
           "DFR_RECORD"]
