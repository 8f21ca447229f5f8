"""The handler that ends JTT's first (ERM) stage (Liu et al. 2021; Saab et al. 2022, Table 1, App. A.2): it reads the
trained ERM network once more over the training data and writes the error set the second stage upsamples."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from monai.utils import min_version, optional_import

from spatialspec.embeddings import extract_embeddings
from spatialspec.robust._engine import network_of

from .upsampling import error_set, save_error_set, upsampling_factor

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["JTTErrorSetWriter"]

logger = logging.getLogger(__name__)


class JTTErrorSetWriter:
    """At the end of the ERM stage, classify every training sample once (eval mode, no augmentation) and write the
    error set with :func:`spatialspec.robust.jtt.save_error_set` (JTT step 2).

    Args:
        data_loader: the training data in data-list order (no shuffling), dict batches with ``image`` and the class
            under ``label_key``.
        output_file: where the error set goes (JSON); the second stage reads it with
            :class:`spatialspec.robust.jtt.UpsampledDataset`.
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
        out = extract_embeddings(network_of(engine), self.data_loader, layer="",
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
