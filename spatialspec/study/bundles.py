"""Where the spatialspec bundles live and which one trains a given level (Sec. 3.3.2 and 5.1)."""

from __future__ import annotations

import os
from pathlib import Path

from spatialspec.levels import SpecificityLevel, parse_level

__all__ = ["find_bundles_dir", "bundle_for", "BINARY_MODELS"]

BINARY_MODELS = ("pixel", "classifier")


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


def bundle_for(level: str | SpecificityLevel, model: str = "pixel") -> str:
    """The bundle that trains ``level``: the global-pooling classifier for ``binary`` with ``model="classifier"``,
    ``bbox_segmentation`` for the box levels, ``segmentation`` (pixel-wise, any level) otherwise."""
    level = parse_level(level)
    if model not in BINARY_MODELS:
        raise ValueError(f"binary model must be one of {', '.join(BINARY_MODELS)}, got {model!r}")
    if model == "classifier":
        if level.kind != "binary":
            raise ValueError(f"the classifier model only trains the 'binary' level, not {level.name!r}")
        return "binary_classification"
    return "bbox_segmentation" if level.kind == "bbox" else "segmentation"
