"""Data-parallel runs under ``torchrun`` (MONAI model-zoo ``multi_gpu_train`` configs): the process group, this
process's device, and an orderly end. The bundles' ``multi_gpu_train.yaml`` wires these instead of writing them as
config expressions; the network itself is wrapped by :func:`spatialspec.networks.prepare_network`.

torch is imported when a function runs, so that importing this module costs nothing (``import spatialspec`` stays
light for the command line).

Example (a ``multi_gpu_train.yaml`` overlay)::

    device: "$spatialspec.distributed.local_device()"
    initialize:
    - "$spatialspec.distributed.init_distributed()"
    - ...
    finalize:
    - "$spatialspec.distributed.destroy_distributed()"
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["default_backend", "local_device", "init_distributed", "destroy_distributed"]


def default_backend() -> str:
    """The process-group backend of this machine: ``nccl`` with CUDA GPUs, ``gloo`` without."""
    import torch

    return "nccl" if torch.cuda.is_available() else "gloo"


def local_device() -> torch.device:
    """This process's device: ``cuda:<LOCAL_RANK>`` with CUDA GPUs (``LOCAL_RANK`` is set by ``torchrun``; 0 when
    absent, a single process), the CPU without.

    Raises:
        ValueError: naming ``LOCAL_RANK`` when it is not a non-negative integer.
    """
    import torch

    if not torch.cuda.is_available():
        return torch.device("cpu")
    text = os.environ.get("LOCAL_RANK", "0")
    if not text.isdigit():
        raise ValueError(f"LOCAL_RANK must be a non-negative integer (set by torchrun), got {text!r}")
    return torch.device(f"cuda:{int(text)}")


def init_distributed(backend: str | None = None) -> torch.device:
    """Join the default process group unless this process already has (``torchrun`` provides the rendezvous through
    ``MASTER_ADDR``, ``MASTER_PORT``, ``RANK`` and ``WORLD_SIZE``), after making :func:`local_device` the current
    CUDA device (one GPU per process).

    Args:
        backend: the process-group backend; ``None`` gives :func:`default_backend`.

    Returns:
        :func:`local_device`.
    """
    import torch
    import torch.distributed as dist

    device = local_device()
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend or default_backend())
    return device


def destroy_distributed() -> None:
    """Leave the default process group, if there is one, once every rank has reached this point: a rank that tears
    down while a peer still communicates can abort that peer (gloo). Ignite's view of the group (its handlers adopt
    it) is reset too, so engines built later in the same process run serially again."""
    import ignite.distributed as idist
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        idist.finalize()  # destroys the group if ignite adopted it, and resets ignite's computation model
        if dist.is_initialized():
            dist.destroy_process_group()
