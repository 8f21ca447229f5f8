"""A study's view of :mod:`spatialspec.registry`: which bundle trains a given level or method, and its configs
(Saab et al. 2022, Sec. 3.3.2 and 5.1)."""

from __future__ import annotations

import os
from pathlib import Path

from spatialspec.levels import SpecificityLevel, parse_level
from spatialspec.registry import METHODS as REGISTRY
from spatialspec.registry import config_files, find_bundles_dir, meta_file, method_for_run

__all__ = ["find_bundles_dir", "bundle_for", "study_level", "study_method", "method_level", "run_configs",
           "run_meta_file", "split_methods", "method_mix", "BINARY_MODELS", "BASELINES", "METHODS",
           "IMAGE_LABEL_BUNDLES", "STAGE_EPOCHS"]

#: the models that train the ``binary`` level (a study's ``--binary-models``)
BINARY_MODELS = ("pixel", "classifier")
#: the robust-training baselines on binary labels (Table 1, App. A.2): study name -> bundle
BASELINES = {e.name: e.bundle for e in REGISTRY.values() if e.image_labels_only and e.model != "classifier"}
#: the location-supervised methods: the cost-robustness methods of Sec. 4.2 / Fig. 4 and the mask-guided
#: classifiers (issue 15), trained at their default level and every label budget: study name -> (level, model)
METHODS = {e.name: (e.levels[0], e.model) for e in REGISTRY.values()
           if not e.image_labels_only and e.model not in ("pixel",)}
#: the bundles that train on image labels only: their datalist entries need no abnormal mask ('label')
IMAGE_LABEL_BUNDLES = tuple(dict.fromkeys(e.bundle for e in REGISTRY.values() if e.image_labels_only))
#: the setting holding the epochs of a two-stage bundle's first stage (default: the final stage's `epochs`); a study
#: trained until converged pins it to its --epochs, so that the first stage does not train --max-epochs epochs
STAGE_EPOCHS = {e.bundle: e.stage_epochs for e in REGISTRY.values() if e.stage_epochs is not None}


def study_level(name: str) -> str:
    """A study's level entry: a method name (``jtt``, ``george``, ``seg-ssl``, ``seg-spl``) as it is, or the
    canonical level name.

    Raises:
        ValueError: naming the entry when it is neither.
    """
    if isinstance(name, str) and name.strip().lower() in (*BASELINES, *METHODS):
        return name.strip().lower()
    try:
        return parse_level(name).name
    except ValueError as e:
        raise ValueError(f"{e}; or a binary-label baseline: {', '.join(BASELINES)}; or a cost-robustness method: "
                         f"{', '.join(METHODS)}") from None


def study_method(name: str) -> str:
    """A study's method entry (``jtt``, ``george``, ``seg-ssl``, ``seg-spl``, ``rrr``, ...), lower-cased; a method
    that trains at several levels (the mask-guided classifiers, issue 15) may name one as ``METHOD:LEVEL``
    (``rrr:bbox``, ``gain:dilate:2``), returned with the level's canonical name; without one it trains at its default
    level. ``mixed`` may name a mix of location labels, ``mixed:seg=20,bbox=60`` (:func:`method_mix`).

    Raises:
        ValueError: naming the entry and the methods when it is not one, or the levels the method trains when the
            level is not one of them, or a mix's count when it is not an integer >= 1.
    """
    key, _, level = str(name).strip().lower().partition(":")
    if key not in (*BASELINES, *METHODS):
        raise ValueError(f"unknown method {name!r}: the binary-label baselines {', '.join(BASELINES)} or the "
                         f"cost-robustness methods {', '.join(METHODS)}")
    if not level:
        return key
    if "=" in level and key == "mixed":
        return _mix_method(key, level, name)
    entry = REGISTRY[key]
    try:
        parsed = parse_level(level)
    except ValueError as e:
        raise ValueError(f"method {name!r}: {e}") from None
    if key in BASELINES or parsed.kind not in entry.levels:
        raise ValueError(f"method {name!r}: {key} trains at {', '.join(entry.levels)} only")
    return f"{key}:{parsed.name}"


def method_level(name: str) -> tuple[str, str]:
    """The method and the level of a :func:`study_method` entry: ``rrr:bbox`` -> ``("rrr", "bbox")``, ``rrr`` ->
    ``("rrr", "seg")`` (its default level)."""
    key, _, level = name.partition(":")
    mix = method_mix(name)
    return key, next(iter(mix)) if mix else level or METHODS[key][0]


def bundle_for(level: str | SpecificityLevel, model: str = "pixel") -> str:
    """The bundle that trains ``level`` with ``model`` (:func:`spatialspec.registry.method_for_run`): the
    classifier for ``binary`` with ``model="classifier"``, ``bbox_segmentation`` for the box levels with the pixel-wise
    model, ``segmentation`` otherwise; a baseline (``jtt``, ``george``) or a method (``ssl``, ``spl``) its own.

    Raises:
        ValueError: when the model is unknown or does not train the level.
    """
    if model not in BINARY_MODELS and model not in {e.model for e in REGISTRY.values()}:
        raise ValueError(f"binary model must be one of {', '.join(BINARY_MODELS)}, got {model!r}")
    return method_for_run(parse_level(level).name, model).bundle


def run_configs(level: str, model: str, kind: str = "train", bundles_dir: str | os.PathLike | None = None
                ) -> list[Path]:
    """The configs one study run merges (:func:`spatialspec.registry.config_files`)."""
    return config_files(method_for_run(level, model), kind, bundles_dir=bundles_dir)


def run_meta_file(level: str, model: str, bundles_dir: str | os.PathLike | None = None) -> Path:
    """The ``metadata.json`` of one study run's bundle."""
    return meta_file(method_for_run(level, model), bundles_dir)


def split_methods(text: str) -> list[str]:
    """A comma-separated ``--methods`` value as entries: the ``KEY=N`` pieces after a ``mixed:`` entry belong to it,
    so ``mixed:seg=20,bbox=60,jtt`` is ``["mixed:seg=20,bbox=60", "jtt"]``."""
    entries: list[str] = []
    for piece in (p.strip() for p in str(text).split(",")):
        if not piece:
            continue
        if "=" in piece and piece.partition(":")[0].lower() not in REGISTRY and entries and "=" in entries[-1]:
            entries[-1] += f",{piece}"
        else:
            entries.append(piece)
    return entries


def _mix_method(key: str, spec: str, name: str) -> str:
    """The canonical ``mixed:LEVEL=N,...`` entry (levels by canonical name, counts as integers)."""
    counts: dict[str, int] = {}
    for piece in spec.split(","):
        level, eq, count = piece.strip().partition("=")
        try:
            parsed = parse_level(level)
        except ValueError as e:
            raise ValueError(f"method {name!r}: {e}") from None
        if not eq or not count.strip().isdigit() or int(count) < 1:
            raise ValueError(f"method {name!r}: the count of {level!r} must be an integer >= 1 (LEVEL=N), got "
                             f"{count.strip()!r}")
        if parsed.kind not in REGISTRY[key].levels or parsed.name in counts:
            raise ValueError(f"method {name!r}: each level once, of {', '.join(REGISTRY[key].levels)}")
        counts[parsed.name] = int(count)
    return f"{key}:" + ",".join(f"{level}={n}" for level, n in counts.items())


def method_mix(name: str) -> dict[str, int] | None:
    """The level -> count mix of a ``mixed:seg=20,bbox=60`` entry of :func:`study_method` (``None`` for any other
    entry); a study trains it once per seed, at the budget of its total."""
    key, _, spec = name.partition(":")
    if "=" not in spec:
        return None
    return {level: int(n) for level, _, n in (piece.partition("=") for piece in spec.split(","))}
