"""Embedding extraction by a forward hook on a named layer, pooled to one vector per image (Saab et al. 2022,
Sec. 3.3.2 / Table 2; GEORGE's penultimate-layer features, App. A.2).

Default layers (:func:`default_embedding_layer`):

- MONAI ``ResNet``: ``avgpool``, the globally pooled features that feed the final ``fc`` (penultimate layer);
- MONAI ``UNet``: the bottleneck, the innermost module of the nested ``SkipConnection`` blocks;
- MONAI ``FlexibleUNet``: ``encoder``, whose deepest feature map is used.

Any other network needs an explicit ``layer`` (a name from ``network.named_modules()``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from monai.data import MetaTensor
from monai.networks.layers import SkipConnection
from monai.networks.nets import FlexibleUNet, ResNet, UNet
from torch import nn

__all__ = ["EmbeddingExtractor", "default_embedding_layer", "extract_embeddings", "POOLING"]

POOLING = ("avg", "max", "flatten")


def default_embedding_layer(network: nn.Module) -> str:
    """The documented embedding layer of a MONAI ResNet, UNet or FlexibleUNet (see the module docstring).

    Raises:
        ValueError: for other networks, asking for an explicit layer name.
    """
    net = network.module if isinstance(network, nn.parallel.DistributedDataParallel) else network
    prefix = "module." if net is not network else ""
    if isinstance(net, ResNet):
        return prefix + "avgpool"
    if isinstance(net, FlexibleUNet):
        return prefix + "encoder"
    if isinstance(net, UNet):
        path, module = "model", net.model
        while isinstance(module, nn.Sequential) and len(module) == 3 and isinstance(module[1], SkipConnection):
            path, module = f"{path}.1.submodule", module[1].submodule
        return prefix + path
    raise ValueError(f"no default embedding layer for {type(net).__name__}: pass layer= with a name from "
                     "network.named_modules()")


def _pool(features: Any, pool: str) -> torch.Tensor:
    if isinstance(features, (list, tuple)):  # an encoder's feature pyramid: the deepest map
        features = features[-1]
    if isinstance(features, MetaTensor):
        features = features.as_tensor()
    if features.ndim <= 2 or pool == "flatten":
        return features.reshape(features.shape[0], -1)
    spatial = tuple(range(2, features.ndim))
    return features.mean(dim=spatial) if pool == "avg" else features.amax(dim=spatial)


class EmbeddingExtractor:
    """A context manager that records a layer's output, pooled to ``B x C``, on every forward pass.

    Args:
        network: the trained network.
        layer: a name from ``network.named_modules()`` (``""`` is the network itself); ``None`` takes
            :func:`default_embedding_layer`.
        pool: ``avg`` (global average over the spatial axes), ``max`` or ``flatten``.

    Example:
        >>> with EmbeddingExtractor(net) as hook:
        ...     net(images)
        >>> embeddings = hook.pop()  # B x C
    """

    def __init__(self, network: nn.Module, layer: str | None = None, pool: str = "avg") -> None:
        if pool not in POOLING:
            raise ValueError(f"pool must be one of {', '.join(POOLING)}, got {pool!r}")
        self.layer = default_embedding_layer(network) if layer is None else layer
        modules = dict(network.named_modules())
        if self.layer not in modules:
            raise ValueError(f"layer {self.layer!r} is not a module of {type(network).__name__}; some of its "
                             f"modules: {', '.join(list(modules)[1:12])}")
        self.module = modules[self.layer]
        self.pool = pool
        self._outputs: list[torch.Tensor] = []
        self._handle: torch.utils.hooks.RemovableHandle | None = None

    def _hook(self, module: nn.Module, inputs: Any, output: Any) -> None:
        self._outputs.append(_pool(output, self.pool).detach())

    def __enter__(self) -> EmbeddingExtractor:
        self._handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def pop(self) -> torch.Tensor:
        """The embeddings recorded since the last call, concatenated (``N x C``); clears the record."""
        if not self._outputs:
            raise RuntimeError(f"no forward pass went through layer {self.layer!r}")
        out, self._outputs = torch.cat(self._outputs), []
        return out


def extract_embeddings(network: nn.Module, batches: Iterable[dict[str, Any]], layer: str | None = None,
                       pool: str = "avg", keys: Sequence[str] = ("y", "s"), image_key: str = "image",
                       device: torch.device | str | None = None) -> dict[str, np.ndarray]:
    """Embeddings of every image of ``batches`` (a DataLoader of dict batches) in eval mode, without gradients.

    Args:
        network: the trained network.
        batches: dict batches holding ``image_key`` and, optionally, ``keys``.
        layer, pool: see :class:`EmbeddingExtractor`.
        keys: batch keys copied alongside (missing keys are skipped), e.g. the class y and spurious label s.
        device: where to run; defaults to the network's device.

    Returns:
        ``{"embedding": N x C float32, "logits": N x K (the network output pooled like the embedding), **keys}``.
    """
    if device is None:
        param = next(network.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    was_training = network.training
    network.eval()
    embeddings, logits, extra = [], [], {key: [] for key in keys}
    try:
        with EmbeddingExtractor(network, layer, pool) as hook, torch.no_grad():
            for batch in batches:
                if image_key not in batch:
                    raise KeyError(f"batch has no {image_key!r} key (keys: {sorted(batch)})")
                output = network(torch.as_tensor(batch[image_key]).to(device))
                embeddings.append(hook.pop().float().cpu())
                logits.append(_pool(output, "avg").float().cpu())
                for key in keys:
                    if key in batch:
                        extra[key].append(torch.as_tensor(batch[key]).reshape(-1).cpu())
    finally:
        network.train(was_training)
    if not embeddings:
        raise ValueError("extract_embeddings: the data loader yielded no batch")
    result = {"embedding": torch.cat(embeddings).numpy(), "logits": torch.cat(logits).numpy()}
    for key, values in extra.items():
        if values:
            result[key] = torch.cat(values).numpy()
    return result
