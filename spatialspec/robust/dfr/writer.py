"""The handler that turns the selected ERM classifier into the DFR model at the end of training (Kirichenko et al.,
ICLR 2023; a binary-label baseline next to Saab et al. 2022, Table 1, App. A.2): the last layer is refitted on the
validation split's penultimate features and written into the network's final ``fc`` layer."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from monai.utils import min_version, optional_import
from torch import nn

from spatialspec.atomic import atomic_write, write_json_atomic
from spatialspec.embeddings import extract_embeddings, load_checkpoint_state
from spatialspec.errors import InputError
from spatialspec.robust._engine import network_of

from .reweighting import C_GRID, DeepFeatureReweighting

Events, _ = optional_import("ignite.engine", "0.4.11", min_version, "Events")
if TYPE_CHECKING:
    from ignite.engine import Engine
else:
    Engine, _ = optional_import("ignite.engine", "0.4.11", min_version, "Engine")

__all__ = ["DFRLastLayerWriter", "ERM_MODEL", "DFR_RECORD"]

logger = logging.getLogger(__name__)

#: the selected ERM checkpoint, kept beside the DFR model
ERM_MODEL = "erm_model.pt"
#: the record of the fit (chosen C, grid scores, subset sizes, draws, seed) and of the model it wrote
DFR_RECORD = "dfr.json"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _is_rank0() -> bool:
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class DFRLastLayerWriter:
    """At the trainer's ``COMPLETED``, after model selection has written ``<ckpt_dir>/model.pt``: keep that ERM
    checkpoint as ``erm_model.pt``, extract the penultimate features of the validation data with it, fit
    :class:`~spatialspec.robust.dfr.DeepFeatureReweighting` (reads y and s there; nothing of the test split), write
    the refit into the final linear layer (the standardisation folded in) and save the network as ``model.pt``, with
    the record ``dfr.json`` (the fit's :meth:`~spatialspec.robust.dfr.DeepFeatureReweighting.record`, the ERM
    checkpoint's and the DFR model's SHA-256).

    Idempotent and resume-safe: the fit always starts from the ERM weights. ``model.pt`` counts as this handler's
    output only when its SHA-256 is the one ``dfr.json`` records (``dfr.json`` is written before ``model.pt``, each
    atomically): then the ERM weights are read from ``erm_model.pt``; otherwise ``model.pt`` is a fresh selection and
    is copied to ``erm_model.pt`` first. A rerun of a finished run (the resume checkpoint says complete, the trainer
    fires ``COMPLETED`` again) so refits from the same ERM weights and writes the same model; a kill at any point
    leaves files from which the rerun does the same. In DDP runs rank 0 alone fits and writes.

    Args:
        data_loader: the validation data in a fixed order, dict batches with ``image``, ``label_key`` and
            ``spurious_key`` (the bundles' ``validate#dataloader`` of the train chain).
        ckpt_dir: the folder of ``model.pt`` (the bundles' ``ckpt_dir``).
        c_grid, n_draws, metric, seed: see :class:`~spatialspec.robust.dfr.DeepFeatureReweighting`.
        layer: the feature layer (``None``: :func:`spatialspec.embeddings.default_embedding_layer`, a MONAI
            ResNet's ``avgpool``, whose pooled output is ``fc``'s input).
        fc_layer: the name of the final ``nn.Linear`` (a MONAI ResNet's ``fc``).
        label_key, spurious_key: batch keys of y and s.
        metrics_prefix: the fit's chosen C and tuning score are put in ``engine.state.metrics`` under this prefix.

    Raises:
        InputError: (a ``ValueError``) naming the setting that is invalid (see
            :class:`~spatialspec.robust.dfr.DeepFeatureReweighting`).
    """

    def __init__(self, data_loader: Any, ckpt_dir: str | os.PathLike, c_grid: Sequence[float] = C_GRID,
                 n_draws: int = 10, metric: str = "worst_group_accuracy", seed: int = 0, layer: str | None = None,
                 fc_layer: str = "fc", label_key: str = "y", spurious_key: str = "s",
                 metrics_prefix: str = "dfr_") -> None:
        self.reweighting = DeepFeatureReweighting(c_grid, n_draws, metric, seed)  # checks the settings now
        self.data_loader, self.ckpt_dir = data_loader, Path(ckpt_dir)
        self.layer, self.fc_layer, self.label_key, self.spurious_key = layer, fc_layer, label_key, spurious_key
        self.metrics_prefix = metrics_prefix

    @property
    def model_file(self) -> Path:
        """``<ckpt_dir>/model.pt``: the selection's ERM model before the fit, the DFR model after."""
        return self.ckpt_dir / "model.pt"

    @property
    def erm_file(self) -> Path:
        """``<ckpt_dir>/erm_model.pt``."""
        return self.ckpt_dir / ERM_MODEL

    @property
    def record_file(self) -> Path:
        """``<ckpt_dir>/dfr.json``."""
        return self.ckpt_dir / DFR_RECORD

    def attach(self, engine: Engine) -> None:
        """Run at ``Events.COMPLETED`` of the trainer."""
        engine.add_event_handler(Events.COMPLETED, self)

    def erm_checkpoint(self) -> Path:
        """The file holding the ERM weights, copying a fresh selection's ``model.pt`` to ``erm_model.pt`` first (see
        the class docstring).

        Raises:
            FileNotFoundError: when neither file exists (no validation ran, so model selection kept nothing), or when
                ``model.pt`` is the recorded DFR model and ``erm_model.pt`` is gone.
        """
        if not self.model_file.is_file():
            if self.erm_file.is_file():
                return self.erm_file
            raise FileNotFoundError(f"DFR: no model to reweight: {self.model_file} does not exist (model selection "
                                    "writes it after each validation)")
        written = None
        if self.record_file.is_file():
            written = json.loads(self.record_file.read_text()).get("model_sha256")
        if written == _sha256(self.model_file.read_bytes()):
            if not self.erm_file.is_file():
                raise FileNotFoundError(f"DFR: {self.model_file} is the DFR model {self.record_file.name} records, but "
                                        f"{self.erm_file.name}, the ERM weights it was refitted from, is missing; "
                                        "train again with --resume False")
            return self.erm_file
        atomic_write(self.erm_file, self.model_file.read_bytes())
        return self.erm_file

    def _fc(self, network: nn.Module) -> nn.Linear:
        fc = dict(network.named_modules()).get(self.fc_layer)
        if not isinstance(fc, nn.Linear):
            raise InputError(f"fc_layer: {self.fc_layer!r} is not an nn.Linear of {type(network).__name__}")
        return fc

    def __call__(self, engine: Engine) -> None:
        """Fit DFR from the ERM checkpoint and write ``model.pt`` and ``dfr.json``."""
        if not _is_rank0():
            return
        trained = network_of(engine)
        trained = trained.module if isinstance(trained, nn.parallel.DistributedDataParallel) else trained
        erm_file = self.erm_checkpoint()
        network = copy.deepcopy(trained)
        network.load_state_dict(load_checkpoint_state(erm_file, "cpu"), strict=True)
        fc = self._fc(network)
        out = extract_embeddings(network, self.data_loader, self.layer, keys=(self.label_key, self.spurious_key))
        for key in (self.label_key, self.spurious_key):
            if key not in out:
                raise KeyError(f"DFRLastLayerWriter: the validation batches have no {key!r} key")
        features = out["embedding"]
        if features.shape[1] != fc.in_features:
            raise InputError(f"layer: its features have {features.shape[1]} channels, {self.fc_layer!r} takes "
                             f"{fc.in_features}; name the layer whose output feeds {self.fc_layer!r}")
        dfr = copy.deepcopy(self.reweighting).fit(features, out[self.label_key], out[self.spurious_key])
        weight, bias = dfr.linear_layer(fc.out_features)
        with torch.no_grad():
            fc.weight.copy_(torch.as_tensor(weight, dtype=fc.weight.dtype))
            fc.bias.copy_(torch.as_tensor(bias, dtype=fc.bias.dtype))
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in network.state_dict().items()}, buffer)
        model_bytes = buffer.getvalue()
        record = {**dfr.record(), "erm_model": self.erm_file.name, "erm_sha256": _sha256(erm_file.read_bytes()),
                  "model": self.model_file.name, "model_sha256": _sha256(model_bytes),
                  "feature_layer": self.layer or "default (avgpool)", "fc_layer": self.fc_layer}
        write_json_atomic(self.record_file, record)  # first: it names the model.pt written next
        atomic_write(self.model_file, model_bytes)
        engine.state.metrics[f"{self.metrics_prefix}C"] = float(dfr.C_)
        engine.state.metrics[f"{self.metrics_prefix}tuning_score"] = float(dfr.scores_[dfr.C_])
        logger.info(f"DFR: C = {dfr.C_} ({dfr.metric} on the held-out half: "
                    f"{ {c: round(v, 4) for c, v in dfr.scores_.items()} }), {dfr.n_draws} balanced subsets of "
                    f"{dfr.subset_size_} images per group {dfr.group_counts_}; {self.model_file} "
                    f"(ERM weights: {self.erm_file.name})")
