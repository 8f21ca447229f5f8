"""Handlers that end the first (ERM) stage of the binary-label baselines (Saab et al. 2022, Table 1, App. A.2):
they read the trained ERM network once more over the training data and write what the second stage trains on.

- :class:`JTTErrorSetWriter`: the training samples the ERM model misclassifies (JTT step 2);
- :class:`GeorgeGroupsWriter`: per-class clusters of the ERM model's embeddings (GEORGE step 2).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from monai.utils import min_version, optional_import

from spatialspec.embeddings import extract_embeddings
from spatialspec.robust.george import GeorgeClusterer, InferredGroups, cluster_alignment
from spatialspec.robust.jtt import error_set, save_error_set, upsampling_factor

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["JTTErrorSetWriter", "GeorgeGroupsWriter", "AttachToTrainer"]

logger = logging.getLogger(__name__)


def _network_of(engine: Engine) -> torch.nn.Module:
    network = getattr(engine, "network", None)
    if network is None:
        raise AttributeError("the engine has no network: attach this handler to a MONAI SupervisedTrainer")
    return network


class JTTErrorSetWriter:
    """At the end of the ERM stage, classify every training sample once (eval mode, no augmentation) and write the
    error set with :func:`spatialspec.robust.save_error_set` (JTT step 2).

    Args:
        data_loader: the training data in data-list order (no shuffling), dict batches with ``image`` and the class
            under ``label_key``.
        output_file: where the error set goes (JSON); the second stage reads it with
            :class:`spatialspec.robust.UpsampledDataset`.
        label_key: the batch key of the image class.
        lambda_up: recorded in the file with the resulting number of copies (``-1``: balanced).
        spurious_key: batch key of the spurious label; when present, the file also counts the errors per (y, s)
            subgroup (a diagnostic only: JTT never uses s).
    """

    def __init__(self, data_loader: Any, output_file: str | os.PathLike, label_key: str = "y",
                 lambda_up: int = -1, spurious_key: str = "s") -> None:
        self.data_loader, self.output_file, self.label_key = data_loader, Path(output_file), label_key
        self.lambda_up, self.spurious_key = int(lambda_up), spurious_key

    def attach(self, engine: Engine) -> None:
        """Run at ``Events.COMPLETED`` of the ERM trainer."""
        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Engine) -> None:
        """Compute and write the error set of ``engine.network``."""
        # layer "" is the network itself: only its output (the logits) is needed here
        out = extract_embeddings(_network_of(engine), self.data_loader, layer="",
                                 keys=(self.label_key, self.spurious_key))
        if self.label_key not in out:
            raise KeyError(f"JTTErrorSetWriter: the batches have no {self.label_key!r} key")
        predictions, labels = out["logits"].argmax(axis=1), out[self.label_key].astype(np.int64)
        errors = error_set(predictions, labels)
        extra = upsampling_factor(len(labels), len(errors), self.lambda_up) if len(errors) else 0
        info: dict[str, Any] = {}
        if self.spurious_key in out:
            groups = [f"y{y}s{s}" for y, s in zip(labels, out[self.spurious_key].astype(np.int64))]
            info["training_by_subgroup"] = {g: groups.count(g) for g in sorted(set(groups))}
            info["errors_by_subgroup"] = {g: sum(groups[i] == g for i in errors) for g in sorted(set(groups))}
        save_error_set(self.output_file, errors, len(labels), lambda_up=self.lambda_up, copies_per_error=1 + extra,
                       erm_epochs=int(engine.state.epoch), erm_train_accuracy=float((predictions == labels).mean()),
                       **info)
        engine.state.metrics["jtt_error_set_size"] = len(errors)
        logger.info(f"JTT: {len(errors)} of {len(labels)} training samples misclassified after "
                    f"{engine.state.epoch} ERM epochs; each appears {1 + extra} times in stage 2 "
                    f"({self.output_file})")


class GeorgeGroupsWriter:
    """At the end of the ERM stage, embed the training (and validation) data with the ERM network, cluster each class
    with a :class:`spatialspec.robust.GeorgeClusterer` fitted on the training embeddings, and write the
    :class:`spatialspec.robust.InferredGroups` (GEORGE step 2).

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
        network = _network_of(engine)
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


class AttachToTrainer:
    """Attach objects that are defined elsewhere in a config but must also listen to the trainer: the second stage's
    data set and loss, which read the first stage's output when the second stage starts.

    MONAI's property checks expect every ``train#handlers`` entry to be a ``_target_`` component, so these objects
    are listed here rather than referenced directly in that list.

    Args:
        handlers: objects with an ``attach(engine)`` method.
    """

    def __init__(self, handlers: list[Any]) -> None:
        missing = [type(h).__name__ for h in handlers if not callable(getattr(h, "attach", None))]
        if missing:
            raise TypeError(f"AttachToTrainer: these objects have no attach(engine) method: {missing}")
        self.handlers = list(handlers)

    def attach(self, engine: Engine) -> None:
        """Attach every object to ``engine``."""
        for handler in self.handlers:
            handler.attach(engine)
