"""GEORGE (Sohoni et al. 2020), a baseline on binary labels (Saab et al. 2022, Table 1, App. A.2): cluster an ERM
model's embeddings within each class to infer hidden subgroups, then train with group DRO over those clusters.

The method package holds what only GEORGE uses; the ``george_classification`` bundle wires it:

- step 2, the end of the ERM stage: :class:`GeorgeGroupsWriter` (:mod:`.writer`) clusters each class with a
  :class:`GeorgeClusterer` and writes the :class:`InferredGroups` (:mod:`.clustering`);
- step 3, the second stage: :class:`GroupLabelledDataset` puts each sample's group in the batch and
  :class:`GroupDROObjective` (:mod:`.objective`) trains with the reusable :class:`spatialspec.losses.GroupDROLoss`.
"""

from __future__ import annotations

from .clustering import (
    CLUSTERERS,
    REDUCERS,
    GeorgeClusterer,
    GroupLabelledDataset,
    InferredGroups,
    cluster_alignment,
    select_n_clusters,
)
from .objective import GroupDROObjective
from .writer import GeorgeGroupsWriter

__all__ = ["GeorgeClusterer", "select_n_clusters", "REDUCERS", "CLUSTERERS", "cluster_alignment", "InferredGroups",
           "GroupLabelledDataset", "GeorgeGroupsWriter", "GroupDROObjective"]
