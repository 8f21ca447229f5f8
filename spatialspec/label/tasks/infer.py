"""MONAI Label infer tasks that serve spatialspec bundles (Saab et al. 2022, Sec. 3.3.2: every model, whatever
its supervision, also gives an image-level probability).

Each task reads the bundle's ``configs/inference.yaml`` (``network_def``, ``preprocessing``, ``inferer``,
``postprocessing``) and ``configs/metadata.json`` the way MONAI Label's ``BundleInferTask`` does, and serves
``models/model.pt``, loaded weights-only and strictly (a wrong checkpoint fails instead of serving random weights).
The location models return their mask in the image's geometry: a bundle whose preprocessing resizes (the SIIM and
ISIC configs load at the training size, e.g. a 1024 x 1024 DICOM at the paper-scale 512,
:class:`spatialspec.transforms.LoadInputImaged`) computes the image score on the network's grid, as
``evaluate.yaml`` does, and its mask is resized back (nearest neighbour) to the input's shape that the loader
recorded.
It derives from :class:`~monailabel.tasks.infer.basic_infer.BasicInferTask` rather than ``BundleInferTask``
because the latter imports torchvision, which has no CPU build on PyPI for the pinned torch. Every result JSON
carries ``abnormal_probability``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from monai.bundle import ConfigParser
from monai.data import MetaTensor
from monai.inferers import Inferer, SimpleInferer
from monai.transforms import Compose, Resized, SaveImaged, SqueezeDimd
from monailabel.interfaces.tasks.infer_v2 import InferType
from monailabel.tasks.infer.basic_infer import BasicInferTask
from monailabel.utils.others.generic import strtobool

from spatialspec.label.annotation import abnormality_boxes, count_abnormalities
from spatialspec.transforms.inputs import input_grid

__all__ = ["PNG_LABEL_INPUTS", "BinaryInferTask", "LocationInferTask", "SpatialSpecInferTask", "image_probability"]

#: output channel names that are not a label an annotator draws
_NOT_A_LABEL = ("background",)
#: the label file of a DICOM or JPEG image (unless the request names a ``result_extension``): an 8-bit PNG of its
#: rows x columns (a JPEG label would be lossy, a DICOM one a bare secondary capture); ``.nii.gz`` on request
PNG_LABEL_INPUTS = (".dcm", ".jpg", ".jpeg")


class SpatialSpecInferTask(BasicInferTask):
    """A spatialspec bundle folder served as a MONAI Label model.

    The bundle's postprocessing writes the image-level probability to ``score``
    (:class:`spatialspec.transforms.ImageScored`); ``SaveImaged`` steps are dropped (MONAI Label writes results).

    Args:
        path: the bundle folder (``<app>/model/<name>``), with ``configs/inference.yaml``,
            ``configs/metadata.json`` and ``models/model.pt``.
        conf: the app's ``--conf`` settings (``preload``).
        type: MONAI Label's infer type.

    Raises:
        FileNotFoundError: naming the bundle file that is missing.
    """

    score_key = "score"

    def __init__(self, path: str, conf: dict[str, str], type: str | InferType) -> None:
        config_file = os.path.join(path, "configs", "inference.yaml")
        metadata_file = os.path.join(path, "configs", "metadata.json")
        model_file = os.path.join(path, "models", "model.pt")
        for required in (config_file, metadata_file, model_file):
            if not os.path.isfile(required):
                raise FileNotFoundError(f"model {os.path.basename(path)}: missing {required}")
        self.bundle_path = path
        self.parser = ConfigParser()
        self.parser.read_config(config_file)
        self.parser["bundle_root"] = path
        with open(metadata_file) as f:
            metadata = json.load(f)
        image_format = next(iter(metadata["network_data_format"]["inputs"].values()))
        pred_format = next(iter(metadata["network_data_format"]["outputs"].values()))
        labels = {name.lower(): int(k) for k, name in pred_format.get("channel_def", {}).items()
                  if name.lower() not in _NOT_A_LABEL}
        super().__init__(
            path=model_file, network=self.parser.get_parsed_content("network_def", instantiate=True), type=type,
            labels=labels, dimension=len(image_format.get("spatial_shape") or (0, 0)),
            description=metadata.get("description", ""), preload=strtobool(conf.get("preload", "false")))
        self.version = metadata.get("version")

    def info(self) -> dict[str, Any]:
        """MONAI Label's model info plus the bundle version."""
        return {**super().info(), "version": self.version}

    def _transforms(self, key: str) -> list[Callable]:
        parsed = self.parser.get_parsed_content(key, instantiate=True) if key in self.parser else []
        transforms = list(parsed.transforms) if isinstance(parsed, Compose) else list(parsed or [])
        return [t for t in transforms if not isinstance(t, SaveImaged)]

    def pre_transforms(self, data: dict[str, Any] | None = None) -> Sequence[Callable]:
        """The bundle's ``preprocessing``."""
        return self._transforms("preprocessing")

    def inferer(self, data: dict[str, Any] | None = None) -> Inferer:
        """The bundle's ``inferer`` (``SimpleInferer`` when it has none)."""
        return self.parser.get_parsed_content("inferer", instantiate=True) if "inferer" in self.parser \
            else SimpleInferer()

    def post_transforms(self, data: dict[str, Any] | None = None) -> Sequence[Callable]:
        """The bundle's ``postprocessing`` without its savers."""
        return self._transforms("postprocessing")

    def abnormal_probability(self, data: dict[str, Any]) -> float:
        """The image-level probability of abnormality of one post-processed sample."""
        if self.score_key not in data:
            raise KeyError(f"model {os.path.basename(self.bundle_path)}: the bundle's postprocessing wrote no "
                           f"'{self.score_key}' (add spatialspec.transforms.ImageScored)")
        return float(torch.as_tensor(data[self.score_key]).reshape(-1)[0])

    def checkpoint_mtime(self) -> float:
        """Modification time of the served checkpoint (changes when training publishes a new one)."""
        path = self.get_path()
        return os.stat(path).st_mtime if path else 0.0


class LocationInferTask(SpatialSpecInferTask):
    """``segmentation`` / ``bbox``: the abnormality mask as the label file (8-bit, on the grid of the image as loaded;
    PNG in, PNG out; the label of a DICOM or JPEG is a PNG of its rows x columns, :data:`PNG_LABEL_INPUTS`), plus
    ``abnormal_probability``, ``abnormalities``, ``inference_shape`` (the grid the network saw) and, with
    ``report_boxes``, ``boxes``: one per connected component, in the image's voxel (i, j) order as MONAI loads it
    (for PNG and DICOM that is (x, y): column, row).
    """

    def __init__(self, path: str, conf: dict[str, str], report_boxes: bool = False) -> None:
        super().__init__(path, conf, type=InferType.SEGMENTATION)
        self.report_boxes = report_boxes

    def post_transforms(self, data: dict[str, Any] | None = None) -> Sequence[Callable]:
        """The bundle's postprocessing (image score on the network's grid), the mask brought back to the image's
        grid, then the channel dimension dropped: the label is a 2-D mask."""
        return [*super().post_transforms(data), self.restore_image_grid,
                SqueezeDimd(keys=self.output_label_key, dim=0)]

    def image_grid(self, data: dict[str, Any]) -> tuple[int, ...]:
        """The input's spatial shape in the axis order of the loaded image (MONAI's: columns, rows for an image
        file): from the loader's ``input_shape`` / ``input_axes`` metadata, else the loaded shape."""
        image = data[self.input_key]
        meta = image.meta if isinstance(image, MetaTensor) else {}
        return input_grid(meta, torch.as_tensor(image).shape[1:])[0]

    def restore_image_grid(self, data: dict[str, Any]) -> dict[str, Any]:
        """The mask (``pred``, ``1 x ...``) resized to :meth:`image_grid` (nearest neighbour) when the network saw
        another grid; the network's grid is kept as ``inference_shape``."""
        data = dict(data)
        data["inference_shape"] = [int(s) for s in torch.as_tensor(data[self.input_key]).shape[1:]]
        grid = self.image_grid(data)
        if tuple(data[self.output_label_key].shape[1:]) != grid:
            data = Resized(keys=self.output_label_key, spatial_size=grid, mode="nearest-exact")(data)
        return data

    def writer(self, data: dict[str, Any], extension: str | None = None, dtype: Any = None) -> tuple[Any, Any]:
        """Write the mask and add the image-level facts to the result JSON."""
        mask = np.asarray(torch.as_tensor(data[self.output_label_key]).detach().cpu())
        image_shape = self.image_grid(data)
        if mask.shape != image_shape:
            raise ValueError(f"model {os.path.basename(self.bundle_path)}: the prediction has shape {mask.shape} "
                             f"but the image {image_shape}; the bundle's postprocessing must keep the image's grid")
        if extension is None and not data.get("result_extension") \
                and str(data.get("image_path", "")).lower().endswith(PNG_LABEL_INPUTS):
            extension = ".png"
        file, result = super().writer(data, extension=extension, dtype=dtype if dtype is not None else np.uint8)
        result = dict(result or {})
        result["abnormal_probability"] = self.abnormal_probability(data)
        result["abnormalities"] = count_abnormalities(mask)
        result["inference_shape"] = data.get("inference_shape")
        if self.report_boxes:
            result["boxes"] = abnormality_boxes(mask)
        return file, result


class BinaryInferTask(SpatialSpecInferTask):
    """``binary``: the image-level classifier; no label file, the class probabilities and
    ``abnormal_probability`` are the result JSON."""

    def __init__(self, path: str, conf: dict[str, str]) -> None:
        super().__init__(path, conf, type=InferType.CLASSIFICATION)

    def writer(self, data: dict[str, Any], extension: str | None = None, dtype: Any = None) -> tuple[Any, Any]:
        """``{"prediction": [{"idx", "label", "score"}, ...], "abnormal_probability": p}``."""
        names = {index: name for name, index in self.labels.items()}
        scores = torch.as_tensor(data[self.output_label_key]).detach().cpu().reshape(-1).tolist()
        prediction = [{"idx": i, "label": names.get(i, f"label_{i}"), "score": float(s)} for i, s in enumerate(scores)]
        return None, {"prediction": prediction, "abnormal_probability": self.abnormal_probability(data)}


def image_probability(task: SpatialSpecInferTask, image_path: str, device: str | None = None) -> tuple[float, Any]:
    """Run ``task`` on one image without writing a result; returns its probability and the post-processed
    prediction (``pred``)."""
    _, data = task({"image": image_path, "device": device, "skip_writer": True})
    return task.abnormal_probability(data), data.get(task.output_label_key)
