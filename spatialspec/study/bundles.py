"""Where the spatialspec bundles live and which one trains a given level (Sec. 3.3.2 and 5.1)."""

from __future__ import annotations

import os
from pathlib import Path

from spatialspec.levels import SpecificityLevel, parse_level

__all__ = ["find_bundles_dir", "bundle_for", "study_level", "method_configs", "BINARY_MODELS", "BASELINES", "METHODS",
           "METHOD_BUNDLES", "IMAGE_LABEL_BUNDLES", "STAGE_EPOCHS"]

BINARY_MODELS = ("pixel", "classifier")
# the robust-training baselines on binary labels (Table 1, App. A.2), named like levels in a study
BASELINES = {"jtt": "jtt_classification", "george": "george_classification"}
# the cost-robustness methods of Sec. 4.2 / Fig. 4, named like levels in a study: entry -> (level, model)
METHODS = {"seg-ssl": ("seg", "ssl"), "seg-spl": ("seg", "spl")}
# the bundle of each method model and the configs merged after its train.yaml (and before evaluate.yaml)
METHOD_BUNDLES = {"ssl": ("seg_ssl", ()), "spl": ("segmentation", ("spl.yaml",))}
# the bundles that train on image labels only: their datalist entries need no abnormal mask ('label')
IMAGE_LABEL_BUNDLES = ("binary_classification", *BASELINES.values())
# the setting holding the epochs of a two-stage bundle's first stage (default: the final stage's `epochs`); a study
# trained until converged pins it to its --epochs, so that the first stage does not train --max-epochs epochs
STAGE_EPOCHS = {"jtt_classification": "erm_epochs", "george_classification": "erm_epochs", "seg_ssl": "initial_epochs"}


def find_bundles_dir(bundles_dir: str | os.PathLike | None = None) -> Path:
    """The folder holding the bundles: ``bundles_dir``, ``$SPATIALSPEC_BUNDLES``, or ``bundles/`` of the source tree.

    Raises:
        FileNotFoundError: naming the places searched when none holds ``segmentation/configs/train.yaml``.
    """
    candidates = [bundles_dir, os.environ.get("SPATIALSPEC_BUNDLES"), Path(__file__).resolve().parents[2] / "bundles"]
    tried = []
    for candidate in candidates:
        if not candidate:
            continue
        path = Path(candidate).expanduser().resolve()
        tried.append(str(path))
        if (path / "segmentation" / "configs" / "train.yaml").is_file():
            return path
    raise FileNotFoundError(f"no spatialspec bundles found (looked in {tried}); pass --bundles-dir or set "
                            "SPATIALSPEC_BUNDLES to the repository's bundles/ folder")


def study_level(name: str) -> str:
    """A study's level entry: a baseline name (``jtt``, ``george``) or a method (``seg-ssl``, ``seg-spl``) as it is,
    or the canonical level name.

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


def bundle_for(level: str | SpecificityLevel, model: str = "pixel") -> str:
    """The bundle that trains ``level``: the global-pooling classifier for ``binary`` with ``model="classifier"``,
    ``bbox_segmentation`` for the box levels, ``segmentation`` (pixel-wise, any level) otherwise; a baseline model
    (``jtt``, ``george``) at the ``binary`` level trains with its own bundle, and a method model (``ssl``, ``spl``) at
    the ``seg`` level with the bundle of :data:`METHOD_BUNDLES`."""
    level = parse_level(level)
    if model in METHOD_BUNDLES:
        if level.kind != "seg":
            raise ValueError(f"the {model} method trains the 'seg' level only, not {level.name!r}")
        return METHOD_BUNDLES[model][0]
    if model in BASELINES:
        if level.kind != "binary":
            raise ValueError(f"the {model} baseline trains on image labels only (level 'binary'), not {level.name!r}")
        return BASELINES[model]
    if model not in BINARY_MODELS:
        raise ValueError(f"binary model must be one of {', '.join(BINARY_MODELS)}, got {model!r}")
    if model == "classifier":
        if level.kind != "binary":
            raise ValueError(f"the classifier model only trains the 'binary' level, not {level.name!r}")
        return "binary_classification"
    return "bbox_segmentation" if level.kind == "bbox" else "segmentation"


def method_configs(model: str) -> tuple[str, ...]:
    """The config files (in the bundle's ``configs/``) merged after ``train.yaml`` for ``model``: ``spl.yaml`` for
    Seg-SPL, none for every other model."""
    return METHOD_BUNDLES[model][1] if model in METHOD_BUNDLES else ()
