"""The spatialspec MONAI Label app (Saab et al., MLHC 2022): spatial-specificity models for annotators.

Lay it out with ``spatialspec label-app --out APP --checkpoint segmentation=... --checkpoint bbox=...
--checkpoint binary=...`` and start it with::

    monailabel start_server --app APP --studies STUDIES --host 127.0.0.1 --conf models segmentation,bbox,binary

Models come from ``APP/model/<name>`` only (``configs/inference.yaml`` + ``models/model.pt``): the app never asks
MONAI Label's model zoo for anything. ``--conf`` settings:

- ``models``: comma-separated model names to serve (default ``segmentation,bbox,binary``);
- ``location_model``: the location model the ``disagreement`` strategy and ``annotation_cost`` scoring use
  (default: ``segmentation`` if served, else ``bbox``);
- ``preload``: ``true`` loads the networks at start-up.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from monailabel.config import settings
from monailabel.datastore.local import LocalDatastore
from monailabel.interfaces.app import MONAILabelApp
from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.tasks.infer_v2 import InferTask
from monailabel.interfaces.tasks.scoring import ScoringMethod
from monailabel.interfaces.tasks.strategy import Strategy
from monailabel.interfaces.tasks.train import TrainTask
from monailabel.tasks.activelearning.random import Random

import spatialspec
from spatialspec.label.tasks import (
    AnnotationCostScoring,
    BinaryInferTask,
    LocationInferTask,
    LocationTrainTask,
    ShortcutDisagreementStrategy,
)

logger = logging.getLogger(__name__)

DEFAULT_MODELS = "segmentation,bbox,binary"
LOCATION_MODELS = ("segmentation", "bbox")
#: image files a local studies folder lists beyond MONAI Label's defaults: SIIM-ACR's DICOMs, ISIC's ``.jpeg``
EXTRA_EXTENSIONS = ("*.dcm", "*.jpeg")


def resolve_models(app_dir: str, conf: dict[str, str]) -> dict[str, str]:
    """Model name -> bundle folder, from ``--conf models``; every folder must exist under ``app_dir/model``."""
    names = [m.strip() for m in conf.get("models", DEFAULT_MODELS).split(",") if m.strip()]
    if not names:
        raise ValueError("--conf models: name at least one model (segmentation, bbox, binary)")
    folders = {name: os.path.join(app_dir, "model", name) for name in names}
    missing = [name for name, folder in folders.items() if not os.path.isdir(os.path.join(folder, "configs"))]
    if missing:
        raise FileNotFoundError(f"--conf models: no bundle for {missing} under {os.path.join(app_dir, 'model')}; "
                                "lay the app out with `spatialspec label-app --out APP --checkpoint NAME=FILE ...`")
    return folders


class SpatialSpecApp(MONAILabelApp):
    """MONAI Label app serving spatialspec's binary, bbox and segmentation bundles."""

    def __init__(self, app_dir: str, studies: str, conf: dict[str, str]) -> None:
        self.models = resolve_models(app_dir, conf)
        location = [name for name in LOCATION_MODELS if name in self.models]
        self.location_model = conf.get("location_model", location[0] if location else "")
        if self.location_model and self.location_model not in self.models:
            raise ValueError(f"--conf location_model: {self.location_model!r} is not one of the served models "
                             f"{sorted(self.models)}")
        # one label for annotators: the abnormality (the binary model's "normal" class is not something to draw)
        super().__init__(app_dir=app_dir, studies=studies, conf=conf, name="spatialspec", labels=["abnormal"],
                         description="Spatial-specificity models against spurious features (Saab et al., MLHC "
                                     "2022): masks, boxes and image labels, shortcut-disagreement active learning, "
                                     "annotation cost per label type",
                         version=spatialspec.__version__)

    def init_datastore(self) -> Datastore:
        """MONAI Label's datastore; a local studies folder also lists :data:`EXTRA_EXTENSIONS` (the image id of
        ``<SOPInstanceUID>.dcm`` is the SOPInstanceUID)."""
        if self.studies.startswith(("http://", "https://")):
            return super().init_datastore()
        extensions = list(settings.MONAI_LABEL_DATASTORE_FILE_EXT)
        extensions += [e for e in EXTRA_EXTENSIONS if e not in extensions]
        return LocalDatastore(self.studies, extensions=extensions,
                              auto_reload=settings.MONAI_LABEL_DATASTORE_AUTO_RELOAD,
                              read_only=settings.MONAI_LABEL_DATASTORE_READ_ONLY)

    def init_infers(self) -> dict[str, InferTask]:
        infers: dict[str, InferTask] = {}
        for name, path in self.models.items():
            if name == "binary":
                infers[name] = BinaryInferTask(path, self.conf)
            else:
                infers[name] = LocationInferTask(path, self.conf, report_boxes=(name == "bbox"))
        return infers

    def init_trainers(self) -> dict[str, TrainTask]:
        return {name: LocationTrainTask(path, self.conf) for name, path in self.models.items()
                if name in LOCATION_MODELS}

    def init_strategies(self) -> dict[str, Strategy]:
        strategies: dict[str, Strategy] = {"random": Random()}
        if "binary" in self._infers and self.location_model:
            strategies["disagreement"] = ShortcutDisagreementStrategy(
                self._infers["binary"], self._infers[self.location_model], self.location_model)
        return strategies

    def init_scoring_methods(self) -> dict[str, ScoringMethod]:
        return {"annotation_cost": AnnotationCostScoring(self._infers.get(self.location_model), self.location_model)}

    def info(self) -> dict[str, Any]:
        """MONAI Label's info, plus where each model's bundle lives."""
        meta = super().info()
        meta["bundles"] = dict(self.models)
        return meta
