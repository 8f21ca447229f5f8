"""Shared by the MONAI Label tests: random-init checkpoints of the served bundles and generated 2-D studies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser
from PIL import Image

from spatialspec.label import DEFAULT_METHODS
from spatialspec.registry import config_files

REPO_ROOT = Path(__file__).resolve().parents[2]
LABEL_VENV = REPO_ROOT / ".venv-label"


def bundle_network(name: str) -> torch.nn.Module:
    """The network of the level serving model ``name``, built from its inference config chain."""
    parser = ConfigParser()
    parser.read_config([str(f) for f in config_files(DEFAULT_METHODS[name], "inference",
                                                     bundles_dir=REPO_ROOT / "bundles")])
    return parser.get_parsed_content("network_def", instantiate=True)


def write_checkpoints(folder: Path, seed: int = 0) -> dict[str, Path]:
    """One seeded random-init checkpoint per served model; ``bbox`` uses the ``{"model": ...}`` layout that
    ``CheckpointSaver`` writes for several objects, the others a bare state dict."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for k, name in enumerate(DEFAULT_METHODS):
        torch.manual_seed(seed + k)
        state = bundle_network(name).state_dict()
        paths[name] = folder / f"{name}.pt"
        torch.save({"model": state} if name == "bbox" else state, paths[name])
    return paths


def write_studies(folder: Path, count: int = 5, shape: tuple[int, int] = (40, 48), seed: int = 0) -> list[str]:
    """``count`` 8-bit grey PNGs of ``shape`` (rows, columns; not square, so a transposed label shows), half of
    them with a bright square; returns the image ids."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = []
    for i in range(count):
        image = rng.normal(90, 20, size=shape)
        if i % 2:
            image[8:16, 10:18] += 120
        ids.append(f"image_{i:02d}")
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"{ids[-1]}.png")
    return ids
