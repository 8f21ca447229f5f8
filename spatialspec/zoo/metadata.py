"""The ``metadata.json`` of an exported bundle: the source bundle's metadata made true of the export (input channels,
output classes and image size of the merged config, the data set) with ``eval_metrics`` holding test figures
measured for it (:mod:`spatialspec.zoo.measure`) or read from a study's record (:func:`figures_from_results`).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spatialspec.errors import InputError
from spatialspec.metrics.robust_auroc import FIGURE_NAMES
from spatialspec.registry import MethodEntry, method_for_run

__all__ = ["DatasetFacts", "DATASET_FACTS", "export_metadata", "figures_from_results", "finite_or_none"]


@dataclass(frozen=True)
class DatasetFacts:
    """What an exported bundle's metadata says of a data set config (``common/configs/<name>.yaml``).

    Args:
        modality: the images' modality.
        data_source: where the data come from and how they are written.
        input_channels: ``channel_def`` of the input image.
        pixelwise_classes: ``channel_def`` of a pixel-wise model's output on this data set, when it is not the
            source bundle's (background, abnormal).
    """

    modality: str
    data_source: str
    input_channels: dict[str, str]
    pixelwise_classes: dict[str, str] = field(default_factory=dict)


#: the data sets of Sec. 5 (docs/datasets.md)
DATASET_FACTS: dict[str, DatasetFacts] = {
    "siim": DatasetFacts(
        modality="CXR",
        data_source="SIIM-ACR Pneumothorax Segmentation (2019) with chest-tube labels as the spurious feature (Saab et "
                    "al. 2022, Sec. 5), written as PNG + datalist.json by `spatialspec data siim`; not redistributed",
        input_channels={"0": "image"}),
    "isic": DatasetFacts(
        modality="dermoscopy",
        data_source="ISIC 2018 with the trap sets of Bissoto et al. 2020 (Saab et al. 2022, Sec. 5), written as PNG + "
                    "datalist.json by `spatialspec data isic`; not redistributed",
        input_channels={"0": "R", "1": "G", "2": "B"},
        pixelwise_classes={"0": "background", "1": "benign lesion", "2": "melanoma lesion"}),
}


def finite_or_none(value: Any) -> float | None:
    """``value`` as a float, or ``None`` when it is missing or not finite (JSON has no NaN)."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _parsed(config: Mapping[str, Any], ids: Sequence[str]) -> dict[str, Any]:
    from monai.bundle import ConfigParser

    parser = ConfigParser(config=dict(config))
    return {i: parser.get_parsed_content(i) for i in ids if i in parser}


def export_metadata(source: Mapping[str, Any], config: Mapping[str, Any], entry: MethodEntry, dataset: str | None,
                    eval_metrics: Mapping[str, float | None], description: str) -> dict[str, Any]:
    """The metadata of an export of ``entry``: ``source`` (the bundle's ``metadata.json``) with the input channels,
    output classes and image size of ``config`` (the merged train config: its ``in_channels``, ``num_classes`` and
    ``image_size``, or the synthetic image side), the data set's modality and source, ``eval_metrics`` and
    ``description`` added to the source's.

    Raises:
        RuntimeError: when the source names other output classes than the config has and no data-set fact names them.
    """
    meta = copy.deepcopy(dict(source))
    values = _parsed(config, ("in_channels", "num_classes", "image_size", "datalist", "synthetic"))
    image = next(iter(meta["network_data_format"]["inputs"].values()))
    pred = next(iter(meta["network_data_format"]["outputs"].values()))
    facts = DATASET_FACTS.get(dataset) if dataset else None
    if facts is not None:
        image["modality"] = facts.modality
        meta["data_source"] = facts.data_source
        image["channel_def"] = dict(facts.input_channels)
    if "in_channels" in values:
        image["num_channels"] = int(values["in_channels"])
    side = values.get("image_size")
    if side is None and values.get("datalist") is None and "synthetic" in values:
        from spatialspec.data import parse_synthetic_overrides

        side = parse_synthetic_overrides(values["synthetic"]).n
    if side is not None:
        pixelwise = list(pred.get("spatial_shape", [])) == list(image.get("spatial_shape", []))
        image["spatial_shape"] = [int(side), int(side)]
        if pixelwise:
            pred["spatial_shape"] = [int(side), int(side)]
    if "num_classes" in values:
        classes = int(values["num_classes"])
        if len(pred.get("channel_def", {})) != classes:
            names = facts.pixelwise_classes if facts is not None and entry.family == "pixelwise" else {}
            if len(names) != classes:
                raise RuntimeError(f"{entry.bundle}/configs/metadata.json names {len(pred.get('channel_def', {}))} "
                                   f"output classes; the export of {entry.name} has {classes}")
            pred["channel_def"] = dict(names)
            meta["pred_classes"] = f"{classes} channels: " + ", ".join(names.values())
        pred["num_channels"] = classes
    meta["eval_metrics"] = {k: finite_or_none(v) for k, v in eval_metrics.items()}
    meta["description"] = f"{source.get('description', '').rstrip()} {description}".strip()
    return meta


def figures_from_results(results: str | os.PathLike | Mapping[str, Any] | Sequence[Mapping[str, Any]],
                         entry: MethodEntry, score: str, run_key: str | None = None,
                         checkpoint: str | os.PathLike | None = None) -> tuple[dict[str, float | None], str]:
    """The test figures of the study record (``results.json`` of ``spatialspec study``) that belongs to ``entry``:
    ``test_<figure>`` for every figure of :data:`~spatialspec.metrics.robust_auroc.FIGURE_NAMES`, and a sentence
    saying which run they come from.

    Args:
        results: a ``results.json`` file or study folder, a list of records, or one record.
        entry: the exported level or method; records of other methods are ignored.
        score: the image score of the export (a run has one record per score).
        run_key: the record's ``run_key`` when the file holds several runs of ``entry`` (seeds, budgets).
        checkpoint: the exported checkpoint; a study's ``runs/<run_key>/models/model.pt`` picks its record.

    Raises:
        InputError: naming ``results`` when no record, or more than one, fits.
    """
    from spatialspec.cost.planner import load_results

    if isinstance(results, Mapping):
        records = [dict(results)]
    elif isinstance(results, (str, os.PathLike)):
        records = load_results(results)
    else:
        records = [dict(r) for r in results]
    fits = []
    for record in records:
        try:
            owner = method_for_run(str(record.get("level")), str(record.get("model")))
        except ValueError:
            continue
        if owner.name == entry.name and record.get("score", score) == score:
            fits.append(record)
    if run_key is not None:
        fits = [r for r in fits if r.get("run_key") == run_key]
    elif len(fits) > 1 and checkpoint is not None:
        parts = set(Path(checkpoint).resolve().parts)
        fits = [r for r in fits if r.get("run_key") in parts] or fits
    if len(fits) != 1:
        keys = sorted(str(r.get("run_key")) for r in fits)
        which = f" with run_key {run_key!r}" if run_key is not None else ""
        raise InputError(f"results: {len(fits)} records of {entry.name} (score {score}){which} "
                         + (f"({', '.join(keys[:6])}); name one with run_key" if fits else "found"))
    record = fits[0]
    missing = [n for n in FIGURE_NAMES if n not in record]
    if missing:
        raise InputError(f"results: record {record.get('run_key')!r} has no {', '.join(missing)}")
    figures = {f"test_{n}": finite_or_none(record[n]) for n in FIGURE_NAMES}
    detail = [f"seed {record.get('seed')}", f"score {record.get('score', score)}"]
    if record.get("n_test") is not None:
        detail.append(f"{record['n_test']} test images")
    ci = record.get("robust_auroc_ci")
    if ci:
        detail.append(f"robust AUROC 95% bootstrap interval [{ci[0]:.4f}, {ci[1]:.4f}]")
    return figures, f"eval_metrics: the test figures of study run {record.get('run_key')} ({', '.join(detail)})."
