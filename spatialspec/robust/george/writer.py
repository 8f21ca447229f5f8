"""The handler that ends GEORGE's first (ERM) stage (Sohoni et al. 2020; Saab et al. 2022, Table 1, App. A.2): it
embeds the training (and validation) data with the trained ERM network, clusters each class and writes the inferred
groups the group-DRO stage trains over."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from monai.utils import min_version, optional_import

from spatialspec.embeddings import extract_embeddings
from spatialspec.robust._engine import network_of

from .clustering import GeorgeClusterer, InferredGroups, cluster_alignment

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["GeorgeGroupsWriter"]

logger = logging.getLogger(__name__)


class GeorgeGroupsWriter:
    """At the end of the ERM stage, embed the training (and validation) data with the ERM network, cluster each class
    with a :class:`spatialspec.robust.george.GeorgeClusterer` fitted on the training embeddings, and write the
    :class:`spatialspec.robust.george.InferredGroups` (GEORGE step 2).

    Args:
        data_loaders: split name -> data loader in data-list order (no shuffling); ``training`` is required.
        output_file: where the groups go (JSON), read by the group-DRO stage.
        clusterer: the (unfitted) clusterer.
        layer: the embedding layer (``None``: :func:`spatialspec.embeddings.default_embedding_layer`, the
            penultimate layer of a MONAI ResNet).
        label_key: batch key of the class; ``spurious_key``: of the spurious label, used only to report how well the
            clusters align with it (absent keys are skipped).
    """

    def __init__(self, data_loaders: Mapping[str, Any], output_file: str | os.PathLike, clusterer: GeorgeClusterer,
                 layer: str | None = None, label_key: str = "y", spurious_key: str = "s") -> None:
        if "training" not in data_loaders:
            raise ValueError(f"data_loaders must include 'training', got {sorted(data_loaders)}")
        self.data_loaders, self.output_file, self.clusterer = dict(data_loaders), Path(output_file), clusterer
        self.layer, self.label_key, self.spurious_key = layer, label_key, spurious_key

    def attach(self, engine: Engine) -> None:
        """Run at ``Events.COMPLETED`` of the ERM trainer."""
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        """Cluster and write the groups of ``engine.network``'s embeddings."""
        network = network_of(engine)
        keys = (self.label_key, self.spurious_key)
        embedded = {split: extract_embeddings(network, loader, self.layer, keys=keys)
                    for split, loader in self.data_loaders.items()}
        train = embedded["training"]
        if self.label_key not in train:
            raise KeyError(f"GeorgeGroupsWriter: the batches have no {self.label_key!r} key")
        self.clusterer.fit(train["embedding"], train[self.label_key])
        groups, alignment = {}, {}
        for split, out in embedded.items():
            ids = self.clusterer.predict(out["embedding"], out[self.label_key])
            groups[split] = ids.tolist()
            if self.spurious_key in out:
                alignment[split] = {str(c): round(v, 6) for c, v in
                                    cluster_alignment(ids, out[self.label_key], out[self.spurious_key]).items()}
        inferred = InferredGroups(n_groups=self.clusterer.n_groups, groups=groups, clusters=self.clusterer.summary(),
                                  alignment=alignment)
        inferred.save(self.output_file)
        engine.state.metrics["george_n_groups"] = inferred.n_groups
        logger.info(f"GEORGE: {inferred.n_groups} groups (k per class {[c['k'] for c in inferred.clusters]}, "
                    f"training sizes {inferred.counts}); alignment with s: {alignment} ({self.output_file})")
