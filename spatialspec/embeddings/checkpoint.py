"""Trained bundle networks and their evaluation data, outside a bundle workflow: for the embeddings of Table 2 /
Fig. 3b/c (Saab et al. 2022, Sec. 3.3.2) and for auditing a checkpoint.

- :func:`bundle_parser` reads a bundle's ``configs/train.yaml`` (plus ``evaluate.yaml`` or any other config merged
  after it, e.g. ``paper_scale.yaml``) with :class:`monai.bundle.ConfigParser`, with overrides;
- :func:`load_checkpoint_state` reads a checkpoint with ``torch.load(..., weights_only=True)``, so a file can hold
  tensors and plain containers only, never code; MONAI's ``CheckpointSaver`` writes ``{"model": state_dict}`` or,
  when it saves one object (the bundles' case), the bare state dict; both are accepted;
- :func:`load_bundle_network` builds the bundle's ``network_def`` and loads a checkpoint into it;
- :func:`bundle_test_loader` gives the bundle's own evaluation data loader (``validate#dataloader`` of
  ``evaluate.yaml``: the split's entries through the bundle's preprocessing), whose batches carry ``y`` and ``s``.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from monai.bundle import ConfigParser
from torch import nn

from spatialspec.errors import InputError

__all__ = ["bundle_parser", "load_checkpoint_state", "load_bundle_network", "bundle_test_loader"]


def _config_paths(bundle_dir: Path, config_files: Sequence[str | os.PathLike]) -> list[Path]:
    from spatialspec.registry import bundle_config_files  # a source bundle is an overlay: its chain comes first

    if not config_files:
        raise ValueError("config_files: at least one bundle config is needed, e.g. 'train.yaml'")
    return bundle_config_files(bundle_dir, config_files)


def bundle_parser(bundle_dir: str | os.PathLike, overrides: Mapping[str, Any] | None = None,
                  config_files: Sequence[str | os.PathLike] = ("train.yaml",)) -> ConfigParser:
    """A :class:`monai.bundle.ConfigParser` of a bundle's configs, merged in order, with ``overrides`` applied.

    Args:
        bundle_dir: the bundle folder (holding ``configs/``).
        overrides: config ids and values (``#`` separates nested ids, e.g. ``{"synthetic": {"n": 32},
            "network_def#channels": [8, 16]}``); ``bundle_root`` defaults to ``bundle_dir``.
        config_files: file names under ``<bundle_dir>/configs`` (or paths), merged in order; for a bundle of the
            source tree's ``bundles/`` (an overlay) its chain of configs comes first
            (:func:`spatialspec.registry.bundle_config_files`).

    Raises:
        FileNotFoundError: naming a missing bundle folder or config file.
    """
    root = Path(bundle_dir).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"bundle_dir not found: {root}")
    parser = ConfigParser()
    parser.read_config([str(p) for p in _config_paths(root, config_files)])
    parser["bundle_root"] = str(root)
    parser.update(dict(overrides or {}))
    return parser


def _is_state_dict(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())


def load_checkpoint_state(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                          key: str | Sequence[str] = "model") -> dict[str, torch.Tensor]:
    """The network state dict of a checkpoint file, loaded with ``torch.load(..., weights_only=True)``.

    Accepts ``{key: state_dict, ...}`` (MONAI ``CheckpointSaver`` with several objects, e.g. model and optimizer) or
    a bare state dict (``CheckpointSaver`` with the model alone, as the spatialspec bundles save it).

    Args:
        path: the checkpoint file (e.g. ``<run>/models/model.pt``).
        map_location: where tensors are loaded.
        key: the entry that holds the network's state dict in a multi-object checkpoint, or several entries tried
            in order.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        InputError: (a ``ValueError``) naming the file when it is not a torch file, when ``weights_only`` refuses
            it (it asks for code or other non-tensor objects) or when it holds neither a state dict nor
            ``{key: state_dict}``.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if not _looks_like_torch_file(path):
        raise InputError(f"checkpoint {path}: not a PyTorch checkpoint (a file written by torch.save, e.g. "
                         "<run>/models/model.pt)")
    try:
        content = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, TypeError, ValueError) as e:
        raise InputError(f"checkpoint {path}: refused or unreadable with torch.load(weights_only=True), which only "
                         f"loads tensors and plain containers: {_torch_load_reason(e)}") from None
    keys = (key,) if isinstance(key, str) else tuple(key)
    for entry in keys:
        if isinstance(content, Mapping) and entry in content and _is_state_dict(content[entry]):
            return dict(content[entry])
    if _is_state_dict(content):
        return dict(content)
    found = sorted(map(str, content))[:8] if isinstance(content, Mapping) else type(content).__name__
    wanted = " or ".join(repr(k) for k in keys)
    raise InputError(f"checkpoint {path}: expected a state dict (str -> tensor) or a dict with a {wanted} state dict, "
                     f"found {found}")


def _looks_like_torch_file(path: Path) -> bool:
    """Whether ``path`` starts like a ``torch.save`` file: a zip archive (the default format) or a pickle (the legacy
    format, protocol 2 or later)."""
    with open(path, "rb") as f:
        head = f.read(4)
    return head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"


def _torch_load_reason(error: BaseException) -> str:
    """The informative line of a ``torch.load`` error: the ``WeightsUnpickler error`` (what the file asked for),
    else the first line."""
    text = str(error).replace("\x1b[1m", "").replace("\x1b[0m", "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if line.startswith("WeightsUnpickler error:"):
            detail = line[len("WeightsUnpickler error:"):].strip() or (lines[i + 1] if i + 1 < len(lines) else "")
            return detail.split(". Please use")[0]
    return lines[0].split(". This is an internal")[0] if lines else type(error).__name__


def _strip_prefix(state: dict[str, torch.Tensor], network: nn.Module, prefix: str = "module.") -> dict[str, Any]:
    """Drop a ``module.`` prefix (a DistributedDataParallel state dict) that the network's own keys lack."""
    own = network.state_dict()
    if state and all(k.startswith(prefix) for k in state) and not any(k.startswith(prefix) for k in own):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state


def load_bundle_network(bundle_dir: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
                        overrides: Mapping[str, Any] | None = None,
                        config_files: Sequence[str | os.PathLike] = ("train.yaml",),
                        device: str | torch.device = "cpu", key: str = "model") -> nn.Module:
    """A bundle's network (its ``network_def``) with a trained checkpoint loaded, in eval mode.

    Args:
        bundle_dir: the bundle folder, e.g. ``bundles/segmentation``.
        checkpoint: the checkpoint file; ``None`` takes the bundle's default, ``ckpt_path`` if a config defines it,
            else ``<ckpt_dir>/model.pt`` (``<output_dir>/models/model.pt``; override ``output_dir`` to point at a
            study run, e.g. ``{"output_dir": "runs/study/runs/seg-pixel-s0"}``).
        overrides: config overrides (see :func:`bundle_parser`), e.g. for a network changed at training time.
        config_files: the configs merged to define the network, e.g. ``("train.yaml", "paper_scale.yaml")`` for a
            paper-scale checkpoint.
        device: where the network is placed.
        key: the state-dict entry of a multi-object checkpoint (see :func:`load_checkpoint_state`).

    Returns:
        the network, on ``device``, in eval mode.

    Raises:
        FileNotFoundError: for a missing bundle, config or checkpoint.
        ValueError: naming the checkpoint when it is refused (see :func:`load_checkpoint_state`) or its keys or
            shapes do not match the network (the first missing / unexpected keys are listed).
    """
    parser = bundle_parser(bundle_dir, overrides, config_files)
    if "network_def" not in parser:
        raise ValueError(f"bundle {bundle_dir}: its configs {list(map(str, config_files))} define no 'network_def'")
    if checkpoint is None:
        if "ckpt_path" in parser:
            checkpoint = parser.get_parsed_content("ckpt_path")
        elif "ckpt_dir" in parser:
            checkpoint = os.path.join(parser.get_parsed_content("ckpt_dir"), "model.pt")
        else:
            raise ValueError(f"bundle {bundle_dir}: no checkpoint given and its configs define neither 'ckpt_path' "
                             "nor 'ckpt_dir'")
    network = parser.get_parsed_content("network_def", instantiate=True)
    if not isinstance(network, nn.Module):
        raise ValueError(f"bundle {bundle_dir}: network_def is a {type(network).__name__}, not a torch module")
    state = _strip_prefix(load_checkpoint_state(checkpoint, "cpu", key), network)
    own = network.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        raise ValueError(f"checkpoint {checkpoint} does not match the network_def of {bundle_dir} "
                         f"({type(network).__name__}): {len(missing)} missing key(s) {missing[:5]}, "
                         f"{len(unexpected)} unexpected key(s) {unexpected[:5]}")
    wrong = [f"{k}: {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if state[k].shape != v.shape]
    if wrong:
        raise ValueError(f"checkpoint {checkpoint} does not match the network_def of {bundle_dir}: "
                         f"{len(wrong)} shape mismatch(es) (checkpoint vs network), e.g. {wrong[:3]}")
    network.load_state_dict(state, strict=True)
    return network.to(device).eval()


def bundle_test_loader(bundle_dir: str | os.PathLike, overrides: Mapping[str, Any] | None = None,
                       split: str = "test", config_files: Sequence[str | os.PathLike] = ("train.yaml", "evaluate.yaml"),
                       batch_size: int | None = None) -> torch.utils.data.DataLoader:
    """The bundle's evaluation data loader on ``split``: ``validate#dataloader`` of ``train.yaml`` +
    ``evaluate.yaml``, i.e. the split's entries (synthetic, or a datalist) through the bundle's own preprocessing,
    in order, unshuffled. Batches are dicts with ``image`` and the entries' ``y`` and ``s`` (and, for the
    location-supervised bundles, ``label``).

    Args:
        bundle_dir: the bundle folder.
        overrides: config overrides, e.g. the run's ``seed``, ``synthetic`` or ``datalist`` (the synthetic test split
            depends on the seed).
        split: ``training``, ``validation`` or ``test`` (``eval_split``).
        config_files: configs merged in order; they must define ``validate#dataloader`` and honour ``eval_split``.
        batch_size: overrides the bundle's ``val_batch_size``.

    Raises:
        FileNotFoundError: for a missing bundle or config.
        ValueError: if the configs define no ``validate#dataloader``.
    """
    pairs = {**(overrides or {}), "eval_split": split}
    if batch_size is not None:
        pairs["val_batch_size"] = int(batch_size)
    parser = bundle_parser(bundle_dir, pairs, config_files)
    if "validate#dataloader" not in parser:
        raise ValueError(f"bundle {bundle_dir}: its configs {list(map(str, config_files))} define no "
                         "'validate#dataloader'")
    return parser.get_parsed_content("validate#dataloader")
