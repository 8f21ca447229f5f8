"""Robust-training baselines on binary labels (Saab et al. 2022, Table 1, App. A.2), one method package each:
:mod:`spatialspec.robust.jtt` (Just Train Twice), :mod:`spatialspec.robust.george` (GEORGE) and
:mod:`spatialspec.robust.dfr` (Deep Feature Reweighting, Kirichenko et al. 2023: the ERM model's last layer refitted
on group-balanced validation data; reads s on the validation split).

The training itself runs in the ``jtt_classification``, ``george_classification`` and ``dfr_classification``
bundles; each method package holds the logic of its stages (the handler that ends the ERM stage, the second stage's
data set and objective, DFR's last-layer fit). Every name is also served here, e.g.
``spatialspec.robust.UpsampledDataset``.
"""

from __future__ import annotations

from .dfr import DeepFeatureReweighting, DFRLastLayerWriter, balanced_subset, fit_balanced
from .george import (
    CLUSTERERS,
    REDUCERS,
    GeorgeClusterer,
    GeorgeGroupsWriter,
    GroupDROObjective,
    GroupLabelledDataset,
    InferredGroups,
    cluster_alignment,
    select_n_clusters,
)
from .jtt import (
    JTTErrorSetWriter,
    UpsampledDataset,
    error_set,
    load_error_set,
    save_error_set,
    upsample,
    upsample_indices,
    upsampling_factor,
)

__all__ = ["error_set", "upsample", "upsample_indices", "upsampling_factor", "save_error_set", "load_error_set",
           "UpsampledDataset", "JTTErrorSetWriter", "GeorgeClusterer", "select_n_clusters", "cluster_alignment",
           "InferredGroups", "GroupLabelledDataset", "GeorgeGroupsWriter", "GroupDROObjective", "REDUCERS",
           "CLUSTERERS", "DeepFeatureReweighting", "DFRLastLayerWriter", "balanced_subset", "fit_balanced"]
