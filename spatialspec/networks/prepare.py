"""The ``network`` of every bundle: the architecture (``network_def``) with its local initialisation, memory
layout and data parallelism applied in one place, so that the paper-scale and DDP configs combine (Saab et al. 2022,
App. A.1: ImageNet initialisation; MONAI model-zoo ``multi_gpu_train`` configs: DDP)."""

from __future__ import annotations

import os

import torch
from torch import nn

from .pretrained import load_pretrained

__all__ = ["prepare_network"]


def prepare_network(network: nn.Module, device: torch.device | str, pretrained: bool | str | os.PathLike | None = False,
                    channels_last: bool = False, distributed: bool = False, sync_batchnorm: bool = False) -> nn.Module:
    """Return ``network`` ready to train on ``device``.

    Args:
        network: the architecture (a bundle's ``network_def``).
        device: where it runs.
        pretrained: a local weights file loaded by :func:`~spatialspec.networks.load_pretrained` (never downloaded),
            or ``False``/``None`` for the random initialisation.
        channels_last: channels-last memory layout (faster convolutions with AMP on a GPU).
        distributed: wrap it in :class:`~torch.nn.parallel.DistributedDataParallel` (the process group must exist:
            the DDP config's ``device`` sets it up).
        sync_batchnorm: with ``distributed``, batch norm over the global batch (GPU runs).
    """
    network = load_pretrained(network, pretrained)
    if channels_last:
        network = network.to(memory_format=torch.channels_last)
    if distributed and sync_batchnorm:
        network = nn.SyncBatchNorm.convert_sync_batchnorm(network)
    device = torch.device(device)
    network = network.to(device)
    if distributed:
        device_ids = [device] if device.type == "cuda" else None
        network = nn.parallel.DistributedDataParallel(module=network, device_ids=device_ids)
    return network
