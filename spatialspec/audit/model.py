"""A trained bundle checkpoint as the audit's score function: images in, image-level abnormality scores out.

Pixel-wise bundles (``segmentation``, ``bbox_segmentation``) give a 2-channel map: softmax over the channels, then
the class-1 probability map is reduced to one score by :func:`spatialspec.transforms.batch_image_score` (``mean``,
``max`` or ``topk:K``; Sec. 3.3.2). Classifier bundles (``binary_classification`` and the baselines) give 2 logits:
the score is the softmax class-1 probability. This is the readout of the bundles' ``inference.yaml``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from spatialspec.embeddings.checkpoint import load_checkpoint_state
from spatialspec.errors import InputError
from spatialspec.transforms.scores import batch_image_score, parse_score

__all__ = ["resolve_bundle", "load_network", "network_score_fn", "bundle_score_fn"]


def resolve_bundle(bundle: str | os.PathLike, bundles_dir: str | os.PathLike | None = None) -> Path:
    """The folder of a bundle given by name (looked up with :func:`spatialspec.study.bundles.find_bundles_dir`) or
    by path.

    Raises:
        FileNotFoundError: naming the bundle and, for a name, the bundles available.
    """
    path = Path(bundle).expanduser()
    if (path / "configs" / "train.yaml").is_file():
        return path.resolve()
    from spatialspec.registry import find_bundles_dir

    root = find_bundles_dir(bundles_dir)
    if (root / str(bundle) / "configs" / "train.yaml").is_file():
        return root / str(bundle)
    names = sorted(p.parent.parent.name for p in root.glob("*/configs/train.yaml"))
    raise FileNotFoundError(f"bundle {str(bundle)!r} not found: not a folder with configs/train.yaml, nor one of the "
                            f"bundles in {root} ({', '.join(names)})")


def load_network(bundle: str | os.PathLike, checkpoint: str | os.PathLike,
                 overrides: Mapping[str, Any] | None = None, device: str | torch.device = "cpu",
                 bundles_dir: str | os.PathLike | None = None) -> nn.Module:
    """Build the bundle's ``network_def`` (``configs/train.yaml``, with ``overrides`` such as
    ``{"network_def#channels": [8, 16]}``), load a checkpoint into it and put it in eval mode.

    The checkpoint is read with ``torch.load(weights_only=True)``; it may be the bundles' ``{"model": state_dict}``,
    a bare state dict, and keys may carry a ``module.`` (DistributedDataParallel) prefix.

    Raises:
        FileNotFoundError: naming the checkpoint when it does not exist.
        ValueError: naming the file when it is not a readable state dict or does not fit the network (pass the
            training's ``network_def`` overrides).
    """
    from monai.bundle import ConfigParser

    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    from spatialspec.registry import bundle_config_files

    config = bundle_config_files(resolve_bundle(bundle, bundles_dir))
    parser = ConfigParser()
    parser.read_config([str(c) for c in config])
    for key, value in (overrides or {}).items():
        if not str(key).startswith("network_def"):
            raise ValueError(f"override {key!r}: only network_def keys shape the network (e.g. network_def#channels)")
        parser[str(key)] = value
    try:
        network = parser.get_parsed_content("network_def", instantiate=True)
    except Exception as e:
        raise ValueError(f"cannot build network_def of {[str(c) for c in config]} with overrides "
                         f"{dict(overrides or {})}: {e}") from e
    state = load_checkpoint_state(path, map_location="cpu")
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    misfit = _state_misfit(network, state)
    if misfit:
        raise InputError(f"checkpoint {path} does not fit network_def of {config}: {misfit}; is it a checkpoint of "
                         "another bundle? (pass the training's network_def overrides with --set)")
    network.load_state_dict(state)
    return network.to(device).eval()


def _state_misfit(network: nn.Module, state: Mapping[str, torch.Tensor]) -> str:
    """What keeps ``state`` from loading into ``network``, on one line (empty if it loads)."""
    own = network.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
                  if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    kinds = ((missing, "missing tensors"), (unexpected, "unexpected tensors"), (mismatched, "tensors of another shape"))
    parts = [f"{len(items)} {what} (first: {items[0]})" for items, what in kinds if items]
    return ", ".join(parts)


def network_score_fn(network: nn.Module, score: str = "mean", batch_size: int = 64,
                     device: str | torch.device | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """A score function ``B x C x H x W`` array -> ``B`` scores: the network in eval mode without gradients, softmax
    over channel 1 and the class-1 probability reduced by ``score`` (a classifier's ``B x 2`` output is its class-1
    probability whatever ``score``).

    Raises:
        ValueError: for an unknown ``score`` or ``batch_size`` < 1.
    """
    parse_score(score)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device) if device is not None else next(network.parameters()).device
    network = network.to(device).eval()

    def score_fn(images: np.ndarray) -> np.ndarray:
        batch = torch.as_tensor(np.asarray(images, dtype=np.float32))
        out = []
        with torch.no_grad():
            for start in range(0, batch.shape[0], batch_size):
                logits = network(batch[start : start + batch_size].to(device))
                if hasattr(logits, "as_tensor"):
                    logits = logits.as_tensor()
                out.append(batch_image_score(torch.softmax(logits.float(), dim=1), score).cpu())
        return torch.cat(out).numpy().astype(np.float64)

    return score_fn


def bundle_score_fn(bundle: str | os.PathLike, checkpoint: str | os.PathLike, score: str = "mean",
                    overrides: Mapping[str, Any] | None = None, batch_size: int = 64,
                    device: str | torch.device | None = None,
                    bundles_dir: str | os.PathLike | None = None) -> Callable[[np.ndarray], np.ndarray]:
    """:func:`network_score_fn` of :func:`load_network` (on CUDA when available, unless ``device`` is given)."""
    parse_score(score)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    network = load_network(bundle, checkpoint, overrides, device, bundles_dir)
    return network_score_fn(network, score, batch_size, device)
