"""Fine-tune a location bundle (``segmentation`` or ``bbox``) on the datastore's final labels.

MONAI Label's :class:`~monailabel.tasks.train.bundle.BundleTrainTask` runs the bundle's ``train.yaml`` with the
datastore's ``{image, label}`` pairs as ``train#dataset#data``/``validate#dataset#data``, starting from the served
``models/model.pt``. The bundle turns each saved mask into its level's supervision (``SpecificityLabeld``: the
``bbox`` bundle trains on boxes around the annotator's mask). Annotated images carry no spurious-feature label, so
validation keeps the loss (the key metric) and drops robust AUROC. When training ends the best checkpoint
replaces ``models/model.pt`` atomically and the infer tasks pick it up on their next call.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from typing import Any

from monailabel.interfaces.datastore import Datastore
from monailabel.interfaces.exception import MONAILabelError, MONAILabelException
from monailabel.tasks.train.bundle import BundleTrainTask

__all__ = ["LocationTrainTask"]

logger = logging.getLogger(__name__)


class LocationTrainTask(BundleTrainTask):
    """Train task of a spatialspec location bundle.

    Args:
        path: the bundle folder (``<app>/model/<name>``).
        conf: the app's ``--conf`` settings.
        kwargs: passed to :class:`~monailabel.tasks.train.bundle.BundleTrainTask`.
    """

    def __init__(self, path: str, conf: dict[str, str], **kwargs: Any) -> None:
        kwargs.setdefault("load_strict", True)
        super().__init__(path, conf, **kwargs)

    def config(self) -> dict[str, Any]:
        """MONAI Label's options, with a few epochs by default: this fine-tunes a trained model."""
        options = super().config()
        options["max_epochs"] = 10
        return options

    def _partition_datalist(self, datalist: list[dict[str, Any]], request: dict[str, Any],
                            shuffle: bool = False) -> tuple[list, list | None]:
        if not datalist:
            raise MONAILabelException(MONAILabelError.INVALID_INPUT,
                                      f"train {request.get('model')}: the datastore holds no final labels yet")
        train, val = super()._partition_datalist(datalist, request, shuffle)
        if val is not None and not val:
            logger.warning("train: the validation split is empty; validating on the training labels")
            val = list(train)
        return train, val

    def _update_overrides(self, overrides: dict[str, Any]) -> dict[str, Any]:
        # a fresh fine-tuning run each time: no resume from a previous run's last epoch, no label budget, and no
        # robust AUROC (it needs the spurious label s, which annotations do not have)
        overrides["resume"] = False
        overrides["location_labels"] = None
        overrides["validate#additional_metrics"] = {}
        return overrides

    def _best_checkpoint(self) -> str:
        return os.path.join(self.bundle_path, "eval", "models", "model.pt")

    def _publish(self, since: float) -> str | None:
        best = self._best_checkpoint()
        if not os.path.exists(best) or os.stat(best).st_mtime < since:
            logger.warning(f"train: no new checkpoint at {best}; the served model is unchanged")
            return None
        served = os.path.join(self.bundle_path, "models", "model.pt")
        os.makedirs(os.path.dirname(served), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".model.", suffix=".pt", dir=os.path.dirname(served))
        os.close(fd)
        try:
            shutil.copy2(best, tmp)
            os.replace(tmp, served)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
        logger.info(f"train: published {best} -> {served}")
        return served

    def __call__(self, request: dict[str, Any], datastore: Datastore) -> dict[str, Any]:
        """Train, then serve the best checkpoint."""
        start = time.time()
        result = super().__call__(request, datastore) or {}
        published = self._publish(start)
        return {**result, "published": published}
