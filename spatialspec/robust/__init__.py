"""Robust-training baselines on binary labels (Saab et al. 2022, Table 1, App. A.2): JTT and GEORGE.

The training itself runs in the ``jtt_classification`` and ``george_classification`` bundles; this package holds
the logic of their stages (error sets, upsampling, per-class clustering, inferred groups).
"""

from __future__ import annotations

from .george import (
    CLUSTERERS,
    REDUCERS,
    GeorgeClusterer,
    GroupLabelledDataset,
    InferredGroups,
    cluster_alignment,
    select_n_clusters,
)
from .jtt import (
    UpsampledDataset,
    error_set,
    load_error_set,
    save_error_set,
    upsample,
    upsample_indices,
    upsampling_factor,
)

__all__ = ["error_set", "upsample", "upsample_indices", "upsampling_factor", "save_error_set", "load_error_set",
           "UpsampledDataset", "GeorgeClusterer", "select_n_clusters", "cluster_alignment", "InferredGroups",
           "GroupLabelledDataset", "REDUCERS", "CLUSTERERS"]
