"""Tensors of a nested state packed into one flat tensor per dtype, so that ``torch.save`` writes a few records instead
of one per tensor: a run's resume checkpoint (:class:`~spatialspec.handlers.ResumeHandler`, written after every epoch)
holds the network's and the optimizer's state, a hundred-odd small tensors for the synthetic study's UNet, where
pickling each one cost more than the epoch's other bookkeeping together (issue 17).

The packed state still loads with ``torch.load(..., weights_only=True)``: it is made of dicts, lists, tuples, plain
values and tensors only.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import torch

__all__ = ["pack_tensors", "unpack_tensors", "TENSOR_MARK"]

#: the key of the one-entry dict that stands for a packed tensor: ``{TENSOR_MARK: [group, offset, shape, layout]}``
TENSOR_MARK = "__spatialspec_tensor__"
_LAYOUTS = {"channels_last": torch.channels_last, "channels_last_3d": torch.channels_last_3d}


def pack_tensors(state: Any) -> tuple[Any, dict[str, torch.Tensor]]:
    """Replace every tensor of ``state`` (nested dicts, ordered dicts with their attributes such as a module
    state dict's ``_metadata``, lists and tuples) by a marker, and concatenate the tensors per dtype and device.

    Returns:
        the state with markers, and the flat tensors by group (``float32``, ``int64``, ``float32@cuda:0``, ...).

    Example:
        >>> tree, flat = pack_tensors({"w": torch.ones(2, 3), "step": torch.tensor(4.0), "lr": 0.1})
        >>> sorted(flat), flat["float32"].shape, tree["lr"]
        (['float32'], torch.Size([7]), 0.1)
        >>> unpack_tensors(tree, flat)["step"]
        tensor(4.)
    """
    groups: dict[str, list[torch.Tensor]] = {}
    sizes: dict[str, int] = {}
    tree = _pack(state, groups, sizes)
    return tree, {key: torch.cat([t.reshape(-1) for t in tensors]) for key, tensors in groups.items()}


def unpack_tensors(tree: Any, flat: dict[str, torch.Tensor], copy: bool = True) -> Any:
    """The state :func:`pack_tensors` packed: each tensor with its shape, dtype and memory layout (contiguous or
    channels-last) restored.

    Args:
        tree: the state with markers.
        flat: the flat tensors by group.
        copy: give every tensor storage of its own (``False``: views into ``flat``, e.g. for a look at a memory-mapped
            checkpoint; a channels-last tensor is copied either way).
    """
    if isinstance(tree, dict) and len(tree) == 1 and TENSOR_MARK in tree:
        group, offset, shape, layout = tree[TENSOR_MARK]
        view = flat[group][offset: offset + math.prod(shape)].view(shape)
        if layout:
            return view.contiguous(memory_format=_LAYOUTS[layout])
        return view.clone() if copy else view
    if isinstance(tree, OrderedDict):
        unpacked: Any = OrderedDict((k, unpack_tensors(v, flat, copy)) for k, v in tree.items())
        unpacked.__dict__.update({k: unpack_tensors(v, flat, copy) for k, v in vars(tree).items()})
        return unpacked
    if isinstance(tree, dict):
        return {k: unpack_tensors(v, flat, copy) for k, v in tree.items()}
    if isinstance(tree, list):
        return [unpack_tensors(v, flat, copy) for v in tree]
    if type(tree) is tuple:
        return tuple(unpack_tensors(v, flat, copy) for v in tree)
    return tree


def _layout(tensor: torch.Tensor) -> str:
    """The memory layout to restore: ``""`` (contiguous), ``channels_last`` or ``channels_last_3d``."""
    if tensor.is_contiguous():
        return ""
    if tensor.dim() == 4 and tensor.is_contiguous(memory_format=torch.channels_last):
        return "channels_last"
    if tensor.dim() == 5 and tensor.is_contiguous(memory_format=torch.channels_last_3d):
        return "channels_last_3d"
    return ""


def _pack(obj: Any, groups: dict[str, list[torch.Tensor]], sizes: dict[str, int]) -> Any:
    if isinstance(obj, torch.Tensor):
        tensor = obj.detach()
        group = str(tensor.dtype).removeprefix("torch.")
        if tensor.device.type != "cpu":
            group = f"{group}@{tensor.device}"
        offset = sizes.get(group, 0)
        groups.setdefault(group, []).append(tensor)
        sizes[group] = offset + tensor.numel()
        return {TENSOR_MARK: [group, offset, list(tensor.shape), _layout(tensor)]}
    if isinstance(obj, OrderedDict):
        packed: Any = OrderedDict((k, _pack(v, groups, sizes)) for k, v in obj.items())
        packed.__dict__.update({k: _pack(v, groups, sizes) for k, v in vars(obj).items()})
        return packed
    if isinstance(obj, dict):
        return {k: _pack(v, groups, sizes) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_pack(v, groups, sizes) for v in obj]
    if type(obj) is tuple:
        return tuple(_pack(v, groups, sizes) for v in obj)
    return obj
